"""The value checks of a recipe config (ranges and key combinations), after `kerascv_tl.config` has checked every
key's name and type."""

from __future__ import annotations

from typing import Any

EXPORT_FORMATS = ("savedmodel", "litert", "onnx", "preset")
# train.cache_views: fixed augmentations of a training image cached as extra rows (kerascv_tl.training.feature_cache)
CACHE_VIEWS = ("flip", "zoom", "zoom_flip")


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the key and the allowed values."""


def check_values(config: Any, source: str) -> None:
    """Raises a ConfigError for the first value out of range or key combination that does not hold.

    Long: one flat list of (condition, message) pairs, read top to bottom.
    """
    checks = [
        (config.data.image_size >= 32, "data.image_size must be at least 32"),
        (0.0 < config.data.crop_fraction <= 1.0, "data.crop_fraction must be in (0, 1]"),
        (0.0 < config.data.val_fraction < 1.0, "data.val_fraction must be in (0, 1)"),
        (0.0 < config.data.augment.min_crop_area <= 1.0, "data.augment.min_crop_area must be in (0, 1]"),
        (config.data.max_image_pixels >= 1, "data.max_image_pixels must be at least 1"),
        (config.train.batch_size >= 1, "train.batch_size must be at least 1"),
        (config.train.epochs >= 0, "train.epochs must be at least 0"),
        (config.train.head_epochs >= 0, "train.head_epochs must be at least 0"),
        (config.train.learning_rate > 0, "train.learning_rate must be positive"),
        (config.train.fine_tune_learning_rate > 0, "train.fine_tune_learning_rate must be positive"),
        (0.0 <= config.head.dropout < 1.0, "head.dropout must be in [0, 1)"),
        (
            config.head.anchor_aspect_ratios == "auto"
            or (len(config.head.anchor_aspect_ratios) > 0 and min(config.head.anchor_aspect_ratios) > 0),
            "head.anchor_aspect_ratios must be auto or a non-empty list of positive numbers (height / width)",
        ),
        (config.export.top_k >= 1, "export.top_k must be at least 1"),
        (config.export.max_batch >= 1, "export.max_batch must be at least 1"),
        (config.export.calibration_images >= 1, "export.calibration_images must be at least 1"),
        ((config.export.max_image_pixels or 1) >= 1, "export.max_image_pixels must be at least 1"),
        (
            set(config.export.formats) <= set(EXPORT_FORMATS) and len(config.export.formats) > 0,
            f"export.formats must be a non-empty list of {', '.join(EXPORT_FORMATS)}",
        ),
        (
            set(config.train.cache_views) <= set(CACHE_VIEWS)
            and len(set(config.train.cache_views)) == len(config.train.cache_views),
            f"train.cache_views must be a list of distinct views from {', '.join(CACHE_VIEWS)}",
        ),
        (
            config.train.cache_features or not config.train.cache_views,
            "train.cache_views needs train.cache_features: true (uncached training augments every epoch)",
        ),
        (
            config.export.output_dtype == "float32" or config.export.quantize == "int8",
            "export.output_dtype uint8 needs export.quantize int8 (only an int8 model has quantized outputs)",
        ),
    ]
    pre = config.backbone.preprocessing
    if pre is not None:
        checks.append((len(pre.mean) == 3 and len(pre.std) == 3, "backbone.preprocessing mean/std need 3 values"))
        checks.append((all(s > 0 for s in pre.std), "backbone.preprocessing.std values must be positive"))
    keep = config.data.keep_classes
    if keep is not None:
        folded = [name.casefold() for name in keep]
        checks.append((len(keep) > 0, "data.keep_classes must name at least one class (or be left out)"))
        checks.append((len(set(folded)) == len(folded), f"data.keep_classes names a class twice: {keep}"))
    if config.model.preset is not None:
        defaults = type(config)()
        # backbone.preprocessing stays allowed: it overrides the preset's pixel normalisation
        for section, key in (("backbone", "name"), ("backbone", "weights")):
            changed = getattr(getattr(config, section), key) != getattr(getattr(defaults, section), key)
            checks.append(
                (not changed, f"{section}.{key} cannot be set with model.preset: the preset brings its own backbone")
            )
        changed = config.head.architecture != defaults.head.architecture
        checks.append((not changed, "head.architecture cannot be set with model.preset: the preset brings its head"))
        checks.append(
            (
                config.head.anchor_aspect_ratios == defaults.head.anchor_aspect_ratios,
                "head.anchor_aspect_ratios cannot be set with model.preset: the preset's detector brings its anchors",
            )
        )
        checks.append(
            (
                config.head.group_norm == defaults.head.group_norm,
                "head.group_norm cannot be set with model.preset: the preset brings its heads",
            )
        )
    else:
        for key in ("preset_classes", "class_map", "train_heads"):
            changed = getattr(config.model, key) != getattr(type(config.model)(), key)
            checks.append((not changed, f"model.{key} needs model.preset (it describes the preset's classes)"))
    class_weight = config.train.class_weight
    if isinstance(class_weight, str):
        checks.append(
            (
                class_weight in ("none", "balanced"),
                f"train.class_weight must be none, balanced or a mapping of class name to weight; got {class_weight!r}",
            )
        )
    else:
        checks.append((len(class_weight) > 0, "train.class_weight mapping is empty (use none)"))
        checks.append(
            (all(w >= 0 for w in class_weight.values()), "train.class_weight values must be >= 0 (0 drops a class)")
        )
    unfreeze = config.train.unfreeze
    if isinstance(unfreeze, int):
        checks.append((unfreeze >= 0, "train.unfreeze must be 'all', a number of blocks >= 0, or a layer name"))
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}")
