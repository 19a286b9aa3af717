"""Model cards: what a model is, what it expects, where its weights came from and how well it does."""

from __future__ import annotations

import datetime
from typing import Sequence

import keras
import tensorflow as tf

import kerascv_tl

HEADLINE_METRICS = ("accuracy", "top5_accuracy", "macro_precision", "macro_recall", "macro_f1", "num_examples",
                    "map_50_95", "map_50", "map_75", "ar_100", "miou", "per_class_iou", "pixel_accuracy", "fw_iou",
                    "num_images")


def model_card(config, class_names: Sequence[str], backbone_info: dict, metrics: dict | None = None,
               run_dir: str | None = None) -> dict:
    try:
        import keras_hub

        hub_version = keras_hub.__version__
    except ImportError:  # pragma: no cover - keras-hub is a dependency
        hub_version = None
    size, crop = config.data.image_size, config.data.crop_fraction
    if config.task == "detection":
        resize = f"letterbox: longer side to {size}, pad bottom/right to {size}x{size}; boxes map back to original pixels"
    elif config.task == "segmentation":
        resize = f"stretch to {size}x{size} (bilinear, antialiased); logits resized back to the original size"
    else:
        resize = f"shorter side to ceil({size} / {crop}), centre crop {size}x{size}, bilinear antialiased"
    return {
        "name": config.export.name,
        "task": config.task,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "software": {"kerascv_tl": kerascv_tl.__version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__, "keras_hub": hub_version},
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
        "precision": getattr(config, "precision", "float32"),  # the dtype policy the model computes in
        "metrics": {k: metrics[k] for k in HEADLINE_METRICS if metrics and k in metrics},
        "data": {"train": config.data.train, "val": config.data.val or f"stratified split {config.data.val_fraction}"},
        "run_dir": run_dir,
        "config": config.to_dict(),
    }
