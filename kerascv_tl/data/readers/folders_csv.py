"""Classification files: a class-per-folder tree, or a CSV file of `path,label` rows.

Folder class names are the sorted sub-folder names; CSV class names are the sorted distinct labels (or
given explicitly).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import IMAGE_EXTENSIONS, image_files
from kerascv_tl.data.paths import csv_image_path
from kerascv_tl.data.problems import ProblemLog, skip_or_raise
from kerascv_tl.data.readers.base import collect
from kerascv_tl.data.records import ImageSource

__all__ = ["csv_source", "folder_source"]


def folder_source(
    root: str | os.PathLike, class_names: list[str] | None = None, problems: ProblemLog | None = None
) -> ImageSource:
    """`root/<class>/*.jpg` -> source; classes are the sorted sub-folders (or `class_names`).

    A training class folder without images is an error, or with `problems` a reported problem: the class
    stays in the class list (so validation data may still hold it) but no image teaches it.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (expected one sub-folder of images per class)")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = list(class_names) if class_names is not None else found
    if class_names is not None:
        unexpected = sorted(set(found) - set(names))
        if unexpected:
            raise DataError(f"{root}: class folders {unexpected} are not among the training classes {names}")
    if len(names) < 2:
        raise DataError(f"{root}: found {len(names)} class folder(s) {names}; classification needs at least 2")
    paths, labels = [], []
    for index, name in enumerate(names):
        folder = root / name
        files = image_files(folder) if folder.is_dir() else []
        if not files and class_names is None:
            skip_or_raise(
                problems,
                DataError(f"{folder}: class folder has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})", path=folder),
                "class kept without images",
            )
        paths += [str(p) for p in files]
        labels += [index] * len(files)
    if not paths:
        raise DataError(f"{root}: no images in any class folder", path=root)
    return ImageSource(names, np.asarray(labels, np.int32), paths, description=str(root))


def csv_source(
    path: str | os.PathLike,
    class_names: list[str] | None = None,
    problems: ProblemLog | None = None,
    root: str | os.PathLike | None = None,
) -> ImageSource:
    """CSV with `path,label` rows (a header row is optional); relative paths resolve against the CSV's folder.

    Rows that are short, list an image again, name a label outside `class_names`, or (with a dataset `root`)
    point outside `root` are errors, or with `problems` reported and left out.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [
                (line, row)
                for line, row in enumerate(csv.reader(f), start=1)
                if row and any(cell.strip() for cell in row)
            ]
    except OSError as e:
        raise DataError(f"{path}: cannot read CSV: {e.strerror or e}", path=path) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})", path=path) from None
    if rows and [c.strip().lower() for c in rows[0][1][:2]] == ["path", "label"]:
        rows = rows[1:]
    first_row: dict[str, int] = {}
    entries = list(
        collect(rows, lambda numbered: _csv_entry(path, *numbered, root, first_row), problems, "row skipped")
    )
    if not entries:
        raise DataError(f"{path}: CSV has no usable rows", path=path)
    names = list(class_names) if class_names is not None else sorted({label for _, label, _ in entries})
    index = {name: i for i, name in enumerate(names)}
    unknown = [(line, label) for _, label, line in entries if label not in index]
    if unknown and problems is None:
        raise DataError(
            f"{path}: labels {sorted({label for _, label in unknown})} are not among the classes {names}", path=path
        )
    for line, label in unknown:
        problems.add(path, f"row {line}: label {label!r} is not among the classes {names}", "row skipped")
    entries = [entry for entry in entries if entry[1] in index]
    if len(names) < 2:
        raise DataError(f"{path}: found {len(names)} class(es); classification needs at least 2", path=path)
    return ImageSource(
        names,
        np.asarray([index[l] for _, l, _ in entries], np.int32),
        [p for p, _, _ in entries],
        description=str(path),
    )


def _csv_entry(path: Path, line: int, row: list[str], root, first_row: dict) -> tuple[str, str, int]:
    """(image path, label, row number) of one CSV row; DataError naming the CSV and the row."""
    if len(row) < 2:
        raise DataError(f"{path}: row {line} has {len(row)} field(s); expected path,label", path=path)
    return csv_image_path(path, row[0].strip(), line, root, first_row), row[1].strip(), line
