"""Evaluation reports: classification and COCO detection metrics, PNG plots (confusion matrix, training curves,
image grids, detection overlays)."""
