"""PNG reports: confusion matrix, training curves and image grids.

Figures are built with `matplotlib.figure.Figure` and rendered by `FigureCanvasAgg` directly, so this
module never touches pyplot's global state or the selected backend: importing it inside a notebook leaves
the notebook's inline/interactive backend alone. Every PNG is written to a temporary file beside the target
and renamed over it (`kerascv_tl.utils.io.atomic_path`), so a reader never sees a half-written image.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kerascv_tl.utils.io import atomic_path

log = logging.getLogger(__name__)

DPI = 100
MISTAKE_COLOR = "#c0392b"


# --------------------------------------------------------------------------------------------------- helpers


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)  # attaches itself as figure.canvas
    return figure


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def message_png(path: str | os.PathLike, message: str) -> Path:
    figure = new_figure(6, 2, layout=None)
    figure.text(0.5, 0.5, message, ha="center", va="center", fontsize=16, color="#555555")
    return save_figure(figure, path)


# ------------------------------------------------------------------------------------------ confusion matrix


def plot_confusion_matrix(
    matrix: Any, class_names: Sequence[str], path: str | os.PathLike, normalize: bool = True
) -> Path:
    """Annotated heatmap of a [C, C] confusion matrix (rows = true class, columns = predicted class).

    With `normalize=True` each row is divided by its total (recall on the diagonal); rows with no examples
    stay at 0. Cell and font sizes scale with C so that ~30 classes stay readable.

    Long: the matplotlib calls of one figure, in order.
    """
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"matrix must be square [C, C], got shape {counts.shape}")
    names = [str(name) for name in class_names]
    if len(names) != counts.shape[0]:
        raise ValueError(f"matrix is {counts.shape[0]}x{counts.shape[0]} but class_names has {len(names)} names")
    if counts.shape[0] == 0:
        return message_png(path, "empty confusion matrix")
    counts = counts.astype(np.float64)
    num_classes = counts.shape[0]

    if normalize:
        row_sums = counts.sum(axis=1, keepdims=True)
        values = np.zeros_like(counts)
        np.divide(counts, row_sums, out=values, where=row_sums != 0)
        vmax = 1.0
    else:
        values = counts
        vmax = max(float(values.max()), 1.0)

    side = min(max(5.0, 0.42 * num_classes + 3.0), 20.0)
    figure = new_figure(side + 1.2, side)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)

    tick_size = max(6.0, min(11.0, 180.0 / num_classes))
    axes.set_xticks(
        np.arange(num_classes), labels=names, rotation=60, ha="right", rotation_mode="anchor", fontsize=tick_size
    )
    axes.set_yticks(np.arange(num_classes), labels=names, fontsize=tick_size)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("confusion matrix" + (" (row-normalised)" if normalize else " (counts)"))

    cell_size = max(4.5, min(10.0, 150.0 / num_classes))
    threshold = vmax / 2.0
    for t in range(num_classes):
        for p in range(num_classes):
            value = values[t, p]
            if normalize:
                if value == 0:
                    continue  # blank zero cells keep large matrices legible
                text = f"{value:.2f}"
            else:
                text = f"{int(round(value))}"
            axes.text(
                p,
                t,
                text,
                ha="center",
                va="center",
                fontsize=cell_size,
                color="white" if value > threshold else "black",
            )
    return save_figure(figure, path)


# -------------------------------------------------------------------------------------------- training curves


def _parse_float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan  # "NA", blanks and missing cells


def _read_history(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """Reads a Keras CSVLogger file into {column: values} sorted by epoch, or None if missing/empty.

    When an epoch number appears more than once (a resumed run logging an epoch again) the last row wins.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c for c in (reader.fieldnames or []) if c]
        if not columns:
            return None
        if "epoch" not in columns:
            raise ValueError(f"{path} has no 'epoch' column (columns: {columns}); expected a Keras CSVLogger file")
        rows_by_epoch: dict[int, dict[str, Any]] = {}
        for row in reader:
            epoch = _parse_float(row.get("epoch"))
            if not math.isfinite(epoch):
                continue  # blank line or a repeated header
            rows_by_epoch[int(epoch)] = row  # later rows overwrite earlier ones
    if not rows_by_epoch:
        return None
    epochs = sorted(rows_by_epoch)
    history = {"epoch": np.asarray(epochs, dtype=np.int64)}
    for column in columns:
        if column != "epoch":
            history[column] = np.asarray([_parse_float(rows_by_epoch[e].get(column)) for e in epochs])
    return history


def _metrics_to_plot(histories: list[dict[str, np.ndarray]]) -> tuple[list[str], bool]:
    """Metric names to plot (loss first) and whether they come with val_ twins."""
    seen: list[str] = []
    for history in histories:
        for column in history:
            if column != "epoch" and column not in seen:
                seen.append(column)
    paired = [m for m in seen if not m.startswith("val_") and f"val_{m}" in seen]
    if paired:
        chosen, with_val = paired, True
    else:
        # Trained without validation data: show the training metrics alone rather than nothing.
        chosen, with_val = [m for m in seen if not m.startswith("val_")], False
    chosen.sort(key=lambda m: (m != "loss", seen.index(m)))
    return chosen, with_val


def plot_training_curves(histories: Sequence[tuple[str, str | Path]], path: str | os.PathLike) -> Path:
    """One subplot per metric (train vs val) over all phases on a shared global epoch axis.

    `histories` are (phase_name, csv_path) pairs in training order, each written by `keras.callbacks.CSVLogger`.
    Every metric `m` with a `val_m` column gets a subplot; if no metric has a val twin (no validation data)
    the training metrics are plotted alone. Phases follow each other on the x axis (whether a phase's epoch
    numbers restart at 0 or continue from the previous phase), with a dashed vertical line at each boundary.
    Missing or empty CSV files are skipped; if none is left the PNG says "no training history".

    Long: the matplotlib calls of one figure, in order.
    """
    phases: list[tuple[str, dict[str, np.ndarray], np.ndarray]] = []
    offset = 0
    for phase_name, csv_path in histories:
        history = _read_history(csv_path)
        if history is None:
            continue
        epochs = history["epoch"]
        # 1-based global epoch, gaps inside a phase preserved.
        x = offset + (epochs - epochs.min()) + 1
        phases.append((str(phase_name), history, x))
        offset = int(x.max())

    metrics, with_val = _metrics_to_plot([h for _, h, _ in phases])
    if not phases or not metrics:
        return message_png(path, "no training history")

    columns = min(len(metrics), 2)
    rows = math.ceil(len(metrics) / columns)
    figure = new_figure(6.0 * columns, 3.6 * rows)
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(rows, columns, index + 1)
        series = [("train", metric, "tab:blue")] + ([("val", f"val_{metric}", "tab:orange")] if with_val else [])
        for label, column, color in series:
            xs = [x for _, h, x in phases]
            ys = [h.get(column, np.full(x.shape, np.nan)) for _, h, x in phases]
            # A NaN between phases keeps matplotlib from joining the last point of one phase to the next.
            x_all = np.concatenate([np.append(x, np.nan) for x in xs])
            y_all = np.concatenate([np.append(y, np.nan) for y in ys])
            if np.all(np.isnan(y_all)):
                continue
            axes.plot(x_all, y_all, color=color, marker="o", markersize=3, linewidth=1.5, label=label)
        for phase_index, (phase_name, _, x) in enumerate(phases):
            start = float(x.min()) - 0.5
            if phase_index > 0:
                axes.axvline(start, color="gray", linestyle="--", linewidth=1)
            label = axes.annotate(
                phase_name,
                xy=(start, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -3),
                textcoords="offset points",
                ha="left",
                va="top",
                fontsize=8,
                color="gray",
            )
            label.set_in_layout(False)
        axes.set_xlim(0.5, offset + 0.5)
        axes.set_title(metric)
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
        if axes.lines:
            axes.legend(fontsize=8, loc="best")
    try:
        return save_figure(figure, path)
    except RuntimeError as e:  # FreeType's "raster overflow" on some wild loss values: the run must not die
        log.warning("could not draw %s (%s); writing a note instead", path, e)
        return message_png(path, "training curves could not be drawn")


# ------------------------------------------------------------------------------------------------ image grids


def displayable_image(image: Any) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"each image must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float64)
    if array.size and np.nanmin(array) >= 0.0 and np.nanmax(array) <= 1.0:
        return array  # floats in [0, 1] are shown as they are
    return np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)


def _image_grid(
    images: Any,
    titles: Sequence[str],
    path: str | os.PathLike,
    columns: int,
    title_colors: Sequence[str] | None,
    empty_message: str,
) -> Path:
    images = list(images) if not isinstance(images, np.ndarray) else [images[i] for i in range(images.shape[0])]
    titles = [str(t) for t in titles]
    if len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    if title_colors is not None and len(title_colors) != len(images):
        raise ValueError(f"got {len(images)} images but {len(title_colors)} title colors")
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    if not images:
        return message_png(path, empty_message)

    count = len(images)
    columns = min(int(columns), count)
    rows = math.ceil(count / columns)
    lines = max(t.count("\n") + 1 for t in titles)
    figure = new_figure(2.4 * columns, (2.2 + 0.18 * lines) * rows)
    for index, (image, title) in enumerate(zip(images, titles)):
        axes = figure.add_subplot(rows, columns, index + 1)
        array = displayable_image(image)
        axes.imshow(array, cmap="gray" if array.ndim == 2 else None, interpolation="nearest")
        axes.set_title(title, fontsize=8, color=title_colors[index] if title_colors is not None else "black")
        axes.axis("off")
    return save_figure(figure, path)


def plot_image_grid(
    images: Any,
    titles: Sequence[str],
    path: str | os.PathLike,
    columns: int = 5,
    title_colors: Sequence[str] | None = None,
) -> Path:
    """Grid of images (uint8 [N, H, W, 3] or a list of arrays), one title (and optional title color) each.

    With no images the PNG says "nothing to show".
    """
    return _image_grid(images, titles, path, columns, title_colors, "nothing to show")


def plot_misclassified(
    images: Any,
    y_true: Any,
    y_pred: Any,
    probabilities: Any,
    class_names: Sequence[str],
    path: str | os.PathLike,
    max_images: int = 25,
) -> Path:
    """Grid of up to `max_images` misclassified examples, most confident mistakes first.

    Each title reads "true: X\\npred: Y (0.87)", where 0.87 is the score given to the predicted class.
    With no mistakes the PNG says so.
    """
    true = np.asarray(y_true).astype(np.int64).reshape(-1)
    pred = np.asarray(y_pred).astype(np.int64).reshape(-1)
    scores = np.asarray(probabilities, dtype=np.float64)
    names = [str(name) for name in class_names]
    count = len(images)
    if true.shape[0] != count or pred.shape[0] != count:
        raise ValueError(f"got {count} images, {true.shape[0]} y_true and {pred.shape[0]} y_pred values")
    if scores.ndim != 2 or scores.shape != (count, len(names)):
        raise ValueError(f"probabilities must have shape [{count}, {len(names)}], got {scores.shape}")
    for label_name, labels in (("y_true", true), ("y_pred", pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f"{label_name} must hold class indices in [0, {len(names)})")
    if max_images < 0:
        raise ValueError(f"max_images must be >= 0, got {max_images}")

    wrong = np.flatnonzero(true != pred)
    confidence = scores[wrong, pred[wrong]] if wrong.size else np.zeros(0)
    order = wrong[np.argsort(-confidence, kind="stable")][:max_images]
    selected = [images[i] for i in order]
    titles = [f"true: {names[true[i]]}\npred: {names[pred[i]]} ({scores[i, pred[i]]:.2f})" for i in order]
    return _image_grid(selected, titles, path, 5, [MISTAKE_COLOR] * len(selected), "no misclassified examples")
