"""Grad-CAM explanations of a classifier's evaluation: the most confident mistakes and correct examples per class.

`explain_classifier` runs the model over a labelled source once (the evaluation transform, as the report uses),
keeps the `count` most confident mistakes overall and the `count` most confident correct examples of each class
(a bounded heap each, holding uint8 copies of only the images it keeps, so memory does not grow with the
dataset), computes Grad-CAM for the predicted class of each (`kerascv_tl.evaluation.gradcam`) and writes into
OUT/explain/:

- one PNG per example, the image beside its overlay (heat colour-mapped and alpha-blended over the image):
  mistake_01_<true>_as_<predicted>.png ..., correct_<class>_01.png ...;
- mistakes.png and correct.png, grids of the overlays (correct.png: one row per class, the first
  `MAX_GRID_CLASSES` classes; the per-example files cover every class);
- explain.json, the index: every file with its true and predicted class and the confidence (the probability
  given to the predicted class). The paths are relative to OUT, the evaluation folder.

Mistakes are explained for the class the model predicted (what it saw), their titles and index entries also
naming the true class.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from matplotlib import colormaps
from PIL import Image

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.pipeline import eval_dataset
from kerascv_tl.evaluation.gradcam import gradcam_for
from kerascv_tl.evaluation.plots import MISTAKE_COLOR, plot_image_grid
from kerascv_tl.utils.io import atomic_path, atomic_write_json

__all__ = ["MAX_GRID_CLASSES", "explain_classifier", "overlay_heatmap"]

MAX_GRID_CLASSES = 20
HEAT_ALPHA = 0.45
COLORMAP = "jet"
CORRECT_COLOR = "#1e8449"


def overlay_heatmap(image: np.ndarray, heat: np.ndarray, alpha: float = HEAT_ALPHA) -> np.ndarray:
    """`heat` ([h, w] in [0, 1]) resized bilinearly to `image` ([S, S, 3] pixels in [0, 255]), colour-mapped and
    blended over it: uint8 [S, S, 3]."""
    image = np.asarray(image, np.float32)
    resized = tf.image.resize(np.asarray(heat, np.float32)[..., None], image.shape[:2], method="bilinear")
    colours = colormaps[COLORMAP](np.clip(resized.numpy()[..., 0], 0.0, 1.0))[..., :3] * 255.0
    return np.clip((1.0 - alpha) * image + alpha * colours, 0, 255).astype(np.uint8)


def explain_classifier(
    model: keras.Model,
    source: Any,
    data_config: Any,
    out_dir: str | Path,
    class_names: Sequence[str],
    count: int,
    batch_size: int = 32,
) -> dict:
    """Writes OUT/explain/ (see the module docstring) for `model` on `source`; returns the index explain.json holds.

    `count` >= 1: mistakes shown overall and correct examples shown per class."""
    if count < 1:
        raise ValueError(f"the number of examples to explain must be at least 1, got {count}")
    try:
        cam = gradcam_for(model)  # before the pass over the data: a model it cannot explain fails at once
    except ValueError as e:
        raise DataError(f"--explain: {e}") from None
    mistakes, correct, seen = _select(model, source, data_config, count, batch_size)
    folder = Path(out_dir) / "explain"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("mistake_*.png"), *folder.glob("correct_*.png")]:  # an earlier --explain's
        stale.unlink()
    chosen = sorted(mistakes, key=lambda m: -m[0]) + [
        item for label in sorted(correct) for item in sorted(correct[label], key=lambda m: -m[0])
    ]
    heat = _maps(cam, chosen, batch_size)
    names = [str(n) for n in class_names]
    # A file that failed to decode was left out of the pass, shifting the positions after it: no paths then.
    paths = getattr(source, "paths", None) if seen == len(source) else None
    index: dict = {"method": "grad-cam", "layer": cam.layer, "count": count, "mistakes": [], "correct": []}
    overlays, written = [], set()
    for position, ((confidence, sample, image, true, predicted), cam_map) in enumerate(zip(chosen, heat)):
        overlay = overlay_heatmap(image, cam_map)
        overlays.append(overlay)
        is_mistake = position < len(mistakes)
        if is_mistake:
            name = f"mistake_{position + 1:02d}_{_slug(names[true])}_as_{_slug(names[predicted])}.png"
        else:
            rank = sum(1 for e in index["correct"] if e["true"] == names[true]) + 1
            name = f"correct_{_slug(names[true])}_{rank:02d}.png"
            if name in written:  # two class names with the same file-name form
                name = f"correct_{_slug(names[true])}_class{true}_{rank:02d}.png"
        written.add(name)
        _write_png(folder / name, np.concatenate([image, overlay], axis=1))
        entry = {
            "file": f"explain/{name}",
            "true": names[true],
            "predicted": names[predicted],
            "confidence": round(confidence, 6),
            "index": sample,
        }
        if paths is not None:
            entry["image"] = str(paths[sample])
        index["mistakes" if is_mistake else "correct"].append(entry)
    index["grids"] = _grids(folder, overlays, index, count)
    atomic_write_json(folder / "explain.json", index)
    return index


def _select(model, source, data_config, count: int, batch_size: int):
    """One pass over `source`: heaps of (confidence, -index, uint8 image, true, predicted), the `count` most
    confident mistakes overall and per class the `count` most confident correct examples (ties: earlier first);
    and the number of examples read."""
    mistakes: list = []
    correct: dict[int, list] = {}
    offset = 0
    for images, labels in eval_dataset(source, data_config, batch_size, one_hot=False):
        probs = np.asarray(model.predict_on_batch(images), np.float32)
        labels = labels.numpy().astype(np.int64)
        predicted = probs.argmax(axis=1)
        for i in range(len(labels)):
            confidence = float(probs[i, predicted[i]])
            heap = mistakes if predicted[i] != labels[i] else correct.setdefault(int(labels[i]), [])
            key = (confidence, -(offset + i))
            if len(heap) < count or key > heap[0][:2]:
                item = (
                    *key,
                    np.clip(np.round(images[i].numpy()), 0, 255).astype(np.uint8),
                    int(labels[i]),
                    int(predicted[i]),
                )
                (heapq.heappush if len(heap) < count else heapq.heapreplace)(heap, item)
        offset += len(labels)
    if offset == 0:
        raise ValueError("the data to explain is empty")
    return _items(mistakes), {label: _items(heap) for label, heap in correct.items()}, offset


def _items(heap: list) -> list:
    """Heap entries as (confidence, index, image, true, predicted)."""
    return [(confidence, -negative, image, true, predicted) for confidence, negative, image, true, predicted in heap]


def _maps(cam, chosen: list, batch_size: int) -> list[np.ndarray]:
    heat = []
    for start in range(0, len(chosen), batch_size):
        batch = chosen[start : start + batch_size]
        images = np.stack([item[2] for item in batch]).astype(np.float32)
        heat.extend(cam.maps(images, [item[4] for item in batch]))
    return heat


def _grids(folder: Path, overlays: list[np.ndarray], index: dict, count: int) -> dict:
    mistakes = index["mistakes"]
    plot_image_grid(
        overlays[: len(mistakes)],
        [f"true: {e['true']}\npred: {e['predicted']} ({e['confidence']:.2f})" for e in mistakes],
        folder / "mistakes.png",
        columns=5,
        title_colors=[MISTAKE_COLOR] * len(mistakes),
    )
    # One row per class: a class with fewer than `count` correct examples is padded with blank cells.
    by_class: dict[str, list[tuple[np.ndarray, str]]] = {}
    for entry, overlay in zip(index["correct"], overlays[len(mistakes) :]):
        by_class.setdefault(entry["true"], []).append((overlay, f"{entry['true']} ({entry['confidence']:.2f})"))
    shown = list(by_class)[:MAX_GRID_CLASSES]
    cells, titles = [], []
    for label in shown:
        row = by_class[label]
        blank = np.full_like(row[0][0], 255)
        row = row + [(blank, "")] * (count - len(row))
        cells.extend(cell for cell, _ in row)
        titles.extend(title for _, title in row)
    plot_image_grid(cells, titles, folder / "correct.png", columns=count, title_colors=[CORRECT_COLOR] * len(cells))
    return {"mistakes": "explain/mistakes.png", "correct": "explain/correct.png", "correct_classes_shown": shown}


def _write_png(path: Path, pixels: np.ndarray) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def _slug(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "-", name).strip("-") or "class"
