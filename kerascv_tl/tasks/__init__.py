"""Task models: plain keras.Models built on a registry backbone, plus freeze helpers."""

from kerascv_tl.tasks.classifier import classifier, feature_extractor, head_model
from kerascv_tl.tasks.detector import detector
from kerascv_tl.tasks.freeze import freeze_backbone, get_backbone, unfreeze_backbone
from kerascv_tl.tasks.segmenter import segmenter

__all__ = ["classifier", "detector", "feature_extractor", "freeze_backbone", "get_backbone", "head_model", "segmenter",
           "unfreeze_backbone"]
