"""Datasets: the embedded synthetic shapes dataset and loaders."""
