"""Fitting: one phase with checkpoints and exact resume (`fit`), the two-phase schedule every task follows
(`schedule`), optimizers, resume callbacks, the multi-worker loop and the feature cache."""
