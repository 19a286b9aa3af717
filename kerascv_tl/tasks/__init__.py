"""Tasks: the Task interface and registry (`base`, `registry`, one module per task), the task models (plain
keras.Models built on a registry backbone) and the freeze helpers. Importing this package registers every Keras
class kerascv-tl's models are made of, so that `keras.saving.load_model` and KerasHub's `from_preset` find them."""

import kerascv_tl.tasks.retinanet  # noqa: F401  (registers RetinaNetDetector: presets and .keras files name it)
from kerascv_tl.tasks.classifier import classifier, feature_extractor, head_model
from kerascv_tl.tasks.detector import detector
from kerascv_tl.tasks.freeze import freeze_backbone, get_backbone, unfreeze_backbone
from kerascv_tl.tasks.registry import get_task, task_names
from kerascv_tl.tasks.segmenter import segmenter

__all__ = [
    "classifier",
    "detector",
    "feature_extractor",
    "freeze_backbone",
    "get_backbone",
    "get_task",
    "head_model",
    "segmenter",
    "task_names",
    "unfreeze_backbone",
]
