"""Model cards: what a model is, what it expects, where its weights came from and how well it does."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

import kerascv_tl

if TYPE_CHECKING:
    from kerascv_tl.config import RecipeConfig


def model_card(
    config: RecipeConfig,
    class_names: Sequence[str],
    backbone_info: dict,
    resize: str,
    metrics: dict | None = None,
    run_dir: str | None = None,
) -> dict:
    """The card of a run's model. `resize` says in words how the serving graph resizes an image and `metrics` are
    the headline figures (both the task's: `Task.serving_resize`, `Task.card_metrics`)."""
    try:
        import keras_hub

        hub_version = keras_hub.__version__
    except ImportError:  # pragma: no cover - keras-hub is a dependency
        hub_version = None
    size, crop = config.data.image_size, config.data.crop_fraction
    return {
        "name": config.export.name,
        "task": config.task,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "software": {
            "kerascv_tl": kerascv_tl.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "keras_hub": hub_version,
        },
        "labels": list(class_names),
        "input": {
            "pixels": "RGB, any size; decoded in the graph (JPEG EXIF orientation honoured)",
            "resize": resize,
            "image_size": size,
            "crop_fraction": crop,
        },
        "preprocessing": backbone_info.get("preprocessing"),
        "backbone": {k: backbone_info.get(k) for k in ("name", "pooling", "weights_source")},
        "recipe": config.recipe,
        "precision": config.precision,  # the dtype policy the model computes in
        "metrics": dict(metrics or {}),
        "data": {
            "train": config.data.train,
            "val": config.data.val or f"seeded split of data.train, fraction {config.data.val_fraction}",
        },
        "run_dir": run_dir,
        "config": config.to_dict(),
    }
