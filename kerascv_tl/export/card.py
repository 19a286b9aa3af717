"""Model cards: what a model is, what it expects, where its weights came from and how well it does.

A card travels with the model (run folder, SavedModel version folder, a model hub), so it carries no absolute local
path: `portable_path` turns every path in it into a description that means the same on another machine and tells
nothing of this one (`/home/me/data/flowers5/train` -> `flowers5/train`). The run folder's config.yaml keeps the
real paths: it is the recipe a re-run reads; nothing reads a path back from a card.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kerascv_tl

if TYPE_CHECKING:
    from kerascv_tl.config import RecipeConfig

__all__ = ["CONFIG_PATH_FIELDS", "model_card", "portable_card", "portable_path"]

# The config keys that may hold a local path, and how many trailing components of it a card keeps: two for data
# (a dataset's folder and split, `flowers5/train`, or `coco/instances_val2017.json`), one for the rest (a weights
# file, a preset or cache folder, an output folder: its name).
CONFIG_PATH_FIELDS = {
    "data.train": 2,
    "data.val": 2,
    "data.root": 1,
    "data.image_root": 2,
    "data.val_image_root": 2,
    "data.classes": 2,
    "data.tfds_data_dir": 1,
    "backbone.name": 1,
    "backbone.weights": 1,
    "model.preset": 1,
    "model.preset_classes": 2,
    "train.feature_cache_dir": 1,
    "output_dir": 1,
    "export.dir": 1,
}
# The same for the provenance record of `kerascv_tl.backbones.weights` (the card's backbone.weights_source).
WEIGHTS_SOURCE_PATH_FIELDS = {"path": 1, "handle": 1, "wanted": 1, "cache_dir": 2}

# "tfds:NAME", "kaggle://...", "gs://...": a handle with a scheme names no local file (two letters at least, so
# that a Windows drive "C:" is not taken for one).
_HANDLE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
# An absolute path inside free text ("sidecar /x/preprocessing.json"): a "/" or a drive that starts a word and is
# followed by a path character; "JPEG/PNG", "1/8", "a / b" and URLs' "//" are not matched.
_ABSOLUTE_IN_TEXT = re.compile(r"(?<![\w.~:/\\-])(?:[A-Za-z]:[\\/]|/)(?=[^\s/\\])[^\s'\",;()\[\]]*")


def portable_path(value: Any, parts: int = 1) -> Any:
    """A local path as a portable description: its last `parts` components, joined with "/".

    The components are counted after the home folder is cut off, so a shallow path (`~/flowers5`) never brings the
    user's name along; relative paths are made absolute first (`../flowers5/train` -> `flowers5/train`). Anything
    that is not a local path comes back as it is: None and non-strings, names without a separator (`imagenet`,
    `mobilenet_v2`, `runs`, `a,b,c`) and handles with a scheme (`tfds:mnist`, `kaggle://...`, `gs://...`).
    """
    if not isinstance(value, str) or not value or _HANDLE.match(value):
        return value
    if "/" not in value and os.sep not in value and not value.startswith("~"):
        return value
    path = os.path.abspath(os.path.expanduser(value))
    home = os.path.expanduser("~")
    try:
        under_home = home not in ("~", os.sep) and os.path.commonpath([path, home]) == home
    except ValueError:  # another Windows drive
        under_home = False
    if under_home:
        path = os.path.relpath(path, home)
    kept = [p for p in Path(path).parts if p != Path(path).anchor][-parts:]
    return "/".join(kept) or "."


def portable_card(card: dict) -> dict:
    """A copy of `card` without absolute local paths: the config's path fields (`CONFIG_PATH_FIELDS`), the data and
    backbone sections and the weights' provenance through `portable_path`, then any absolute path left in any other
    text (a preprocessing source "sidecar /x/preprocessing.json", a field added later) by its last component.
    Labels are left alone: they are names, whatever characters they hold. Applying it twice changes nothing."""
    card = _copy(card)
    config = card.get("config")
    if isinstance(config, dict):
        for key, parts in CONFIG_PATH_FIELDS.items():
            section, _, name = key.rpartition(".")
            holder = config.get(section) if section else config
            if isinstance(holder, dict) and name in holder:
                holder[name] = portable_path(holder[name], parts)
    data = card.get("data")
    if isinstance(data, dict):
        for name in ("train", "val"):
            data[name] = portable_path(data.get(name), 2)
    backbone = card.get("backbone")
    if isinstance(backbone, dict):
        backbone["name"] = portable_path(backbone.get("name"))
        source = backbone.get("weights_source")
        if isinstance(source, dict):
            for name, parts in WEIGHTS_SOURCE_PATH_FIELDS.items():
                if name in source:
                    source[name] = portable_path(source[name], parts)
    if "run_dir" in card:
        card["run_dir"] = portable_path(card["run_dir"])
    return {key: value if key == "labels" else _scrub(value) for key, value in card.items()}


def model_card(
    config: RecipeConfig,
    class_names: Sequence[str],
    backbone_info: dict,
    resize: str,
    metrics: dict | None = None,
    run_dir: str | None = None,
    data_counts: dict | None = None,
) -> dict:
    """The card of a run's model, free of local paths (`portable_card`). `resize` says in words how the serving
    graph resizes an image and `metrics` are the headline figures (both the task's: `Task.serving_resize`,
    `Task.card_metrics`); `data_counts` the images trained and validated on ({"train_images": N, "val_images": M})."""
    import keras
    import tensorflow as tf

    try:
        import keras_hub

        hub_version = keras_hub.__version__
    except ImportError:  # pragma: no cover - keras-hub is a dependency
        hub_version = None
    size, crop = config.data.image_size, config.data.crop_fraction
    card = {
        "name": config.export.name,
        "task": config.task,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
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
            **{k: int(v) for k, v in (data_counts or {}).items()},
        },
        "run_dir": run_dir,
        "config": config.to_dict(),
    }
    return portable_card(card)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _ABSOLUTE_IN_TEXT.sub(lambda match: portable_path(match.group(0)), value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
