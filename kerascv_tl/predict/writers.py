"""Prediction files: one CSV or JSONL row per image (format from the suffix, written atomically), and unique
names for the per-image files (masks, annotated copies) of images that share a file name.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kerascv_tl.utils.io import atomic_write_text

__all__ = ["OUTPUT_SUFFIXES", "FileNames", "check_output_path", "json_row", "write_predictions"]

OUTPUT_SUFFIXES = (".csv", ".jsonl")


def check_output_path(path: str | os.PathLike) -> Path:
    """`path` when its suffix names a format this writes; ValueError naming it and the choices otherwise."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(
            f"{path}: the output format comes from the file name's suffix: .csv (one row per image) or .jsonl "
            f"(one JSON object per line); {path.suffix or 'no suffix'} is neither"
        )
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give the file to write, e.g. {path / 'predictions.csv'}")
    return path


def json_row(row: dict) -> dict:
    """`row` without its numpy arrays (a segmentation mask goes to a PNG file, not into a text line)."""
    return {key: value for key, value in row.items() if not isinstance(value, np.ndarray)}


def write_predictions(
    path: str | os.PathLike,
    rows: Sequence[dict],
    columns: Sequence[str],
    csv_values: Callable[[dict], dict[str, Any]],
) -> Path:
    """Writes `rows` to `path` in one atomic rename: CSV with the columns `path` + `columns` (the task's
    `prediction_columns`, filled by its `prediction_csv`), or JSONL with each row as it is (arrays left out)."""
    path = check_output_path(path)
    buffer = io.StringIO()
    if path.suffix.lower() == ".csv":
        writer = csv.DictWriter(buffer, fieldnames=["path", *columns], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({"path": row.get("path", ""), **csv_values(row)})
    else:
        for row in rows:
            buffer.write(json.dumps(json_row(row), ensure_ascii=False) + "\n")
    return atomic_write_text(path, buffer.getvalue())


class FileNames:
    """Unique file-name stems: the image's own stem, then stem-2, stem-3, ... for later images of the same name
    (photos/a/x.jpg and photos/b/x.jpg would otherwise write the same mask file)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def __call__(self, path: str | os.PathLike) -> str:
        stem = Path(path).stem
        name, number = stem, 1
        while name.lower() in self._used:  # case-insensitive file systems would still collide
            number += 1
            name = f"{stem}-{number}"
        self._used.add(name.lower())
        return name
