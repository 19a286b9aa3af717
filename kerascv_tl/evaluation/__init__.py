"""Evaluation reports: classification metrics and PNG plots (confusion matrix, training curves, image grids)."""
