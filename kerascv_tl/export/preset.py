"""`export --format preset`: a finished run's model as a KerasHub preset folder.

KerasHub's own `save_to_preset` writes the task (task.json, task.weights.h5) and its backbone (config.json,
model.weights.h5); this adds what a reader needs to use it: metadata.json gains `class_names` (what another run's
head surgery matches against) and a `kerascv_tl` section (task, input contract, pixel normalisation, the run's
headline metrics), and the folder holds the run's model card as model_card.json and README.md (what a model hub
shows). `keras_hub.models.<ObjectDetector|ImageSegmenter>.from_preset(FOLDER)` loads it after
`import kerascv_tl.tasks` (which registers the pixel normaliser and the detector, kerascv-tl classes);
`model.preset: FOLDER` starts another run from it; `keras_hub.upload_preset(URI, FOLDER)` publishes it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

import kerascv_tl

__all__ = ["preset_round_trip", "write_preset"]


def write_preset(model: keras.Model, folder: str | Path, card: dict, class_names: Sequence[str], task) -> Path:
    """Writes `model` as a KerasHub preset into `folder` (replacing a previous export there in one rename)."""
    from kerascv_tl.export.card import portable_card
    from kerascv_tl.export.card_markdown import render_model_card

    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        model.save_to_preset(str(tmp))
        metadata = json.loads((tmp / "metadata.json").read_text())
        metadata["class_names"] = list(class_names)
        metadata["kerascv_tl"] = {
            "version": kerascv_tl.__version__,
            "task": task.name,
            "keras_hub_task": task.keras_hub_task,
            "load": f"import kerascv_tl.tasks; keras_hub.models.{task.keras_hub_task}.from_preset(FOLDER)",
            "input": {
                "pixels": "RGB in [0, 255], float32, batch first",
                "size": list(model.input_shape[1:3]),
                "resize": card.get("input", {}).get("resize"),
            },
            "preprocessing": card.get("preprocessing"),
            "metrics": card.get("metrics"),
        }
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        shareable = portable_card(
            {
                **card,
                "labels": list(class_names),
                "export": {
                    "format": "preset",
                    "folder": target.name,
                    "keras_hub_task": task.keras_hub_task,
                    "image_size": int(model.input_shape[1]),
                },
            }
        )
        (tmp / "model_card.json").write_text(json.dumps(shareable, indent=2) + "\n")
        (tmp / "README.md").write_text(render_model_card(shareable))
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap_in(new: Path, target: Path) -> None:
    """`new` becomes `target`; a previous `target` is moved aside first and removed only after the rename."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rename(target, old / target.name)
    os.rename(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def preset_round_trip(folder: str | Path, model: keras.Model, task, batches: Sequence[np.ndarray]) -> float:
    """Reloads the preset with KerasHub and returns the largest difference between its raw outputs and `model`'s on
    `batches` of pixels ([B, S, S, 3], RGB in [0, 255])."""
    from kerascv_tl.tasks.presets import load_task_preset

    loaded = load_task_preset(str(folder), task.keras_hub_task)
    worst = 0.0
    for pixels in batches:
        expected = keras.tree.flatten(model(pixels, training=False))
        got = keras.tree.flatten(loaded(pixels, training=False))
        worst = max([worst] + [float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(expected, got)])
    return worst
