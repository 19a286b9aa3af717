"""Multi-label image sources: CSV files with `path,labels` rows, where an image may carry several labels.

    path,labels
    images/0001.png,circle|square
    images/0002.png,triangle
    images/0003.png,

`labels` separates labels with `|`; an empty cell means the image shows none of the classes (allowed: it
teaches the model to say so). Relative paths start at the CSV's folder; with a dataset root (`data.root`)
no path may lead outside it. Class names are the sorted distinct labels of the training CSV. A bad row (wrong
number of fields, empty path or label, an image listed again, a label outside the training classes, a path
outside the root) is an error naming the file and the line, or with a `ProblemLog` reported and left out,
as the classification CSV reader does. Without `data.val`, a seeded random split of `data.train` holds out
`data.val_fraction` of the images (`kerascv_tl.data.files.split_records`, the same rule as detection's).

`MultiLabelSource` implements the data check's `Source` protocol (`kerascv_tl.data.records`), so
`kerascv-tl check-data` and `train` open and check every image it lists.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import tensorflow as tf

from kerascv_tl.data.decode import decode_image
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import split_records
from kerascv_tl.data.paths import csv_image_path
from kerascv_tl.data.problems import skip_or_raise
from kerascv_tl.data.tolerant import map_skipping_errors

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig
    from kerascv_tl.data.problems import ProblemLog

__all__ = [
    "HEADER",
    "LABEL_SEPARATOR",
    "MultiLabelSource",
    "load_multi_label_sources",
    "multi_label_source_from_spec",
    "read_multi_label_csv",
]

LABEL_SEPARATOR = "|"
HEADER = ("path", "labels")


@dataclass
class MultiLabelSource:
    """Image files with a multi-hot label vector each (float32 [N, C], 1 where the image carries the class)."""

    class_names: list[str]
    labels: np.ndarray  # float32 [N, C]
    paths: list[str]
    description: str = ""

    size_origin: ClassVar[str] = ""  # no sizes to compare: image labels fit any image size

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, np.float32).reshape(len(self.paths), len(self.class_names))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label_names(self, index: int) -> list[str]:
        """The labels of example `index`, in class order."""
        return [self.class_names[c] for c in np.flatnonzero(self.labels[index] > 0.5)]

    def positives(self) -> np.ndarray:
        """int64 [C]: how many examples carry each class."""
        return (self.labels > 0.5).sum(axis=0).astype(np.int64)

    def subset(self, indices: Sequence[int], description: str) -> MultiLabelSource:
        indices = np.asarray(indices, np.int64).reshape(-1)
        return MultiLabelSource(
            list(self.class_names), self.labels[indices], [self.paths[i] for i in indices], description
        )

    # The data check's `Source` protocol (kerascv_tl.data.records.Source).
    def image_paths(self) -> list[str]:
        return self.paths

    def expected_sizes(self) -> None:
        return None

    def check_contents(self, problems: ProblemLog, data_config: DataConfig) -> int:
        return 0  # the labels were checked as the CSV was read

    def without(self, bad: set[int]) -> MultiLabelSource:
        if not bad:
            return self
        return self.subset([i for i in range(len(self)) if i not in bad], self.description)

    def decoded(self, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
        """(uint8 [H, W, 3] image, float32 [C] multi-hot labels); the file list is shuffled before decoding."""
        # Bytes, not str: a file name that is not UTF-8 still opens (check-data reports it all the same).
        paths = [os.fsencode(p) for p in self.paths]
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), self.labels))
        if shuffle:
            ds = ds.shuffle(max(len(self), 1), seed=seed, reshuffle_each_iteration=False)
        # A file that fails to decode here (it passed the data check) is left out and named on stderr.
        return map_skipping_errors(ds, _read_and_decode, lambda path, labels: path)


def _read_and_decode(path, labels):
    return decode_image(tf.io.read_file(path)), labels


# ------------------------------------------------------------------------------------------------ the CSV


def read_multi_label_csv(
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    problems: ProblemLog | None = None,
    root: str | os.PathLike | None = None,
) -> MultiLabelSource:
    """A `MultiLabelSource` from a `path,labels` CSV (see the module docstring).

    With `class_names` (validation or evaluation data) the classes are those, and a row naming another label
    is bad; otherwise they are the sorted distinct labels of the file. Bad rows raise a DataError naming the
    file and the line, or with `problems` are reported there and left out.
    """
    path = Path(path)
    rows = _csv_rows(path)
    if not rows or [cell.strip().lower() for cell in rows[0][1]] != list(HEADER):
        line = rows[0][0] if rows else 1
        raise DataError(
            f"{path}: line {line}: expected the header row {','.join(HEADER)} (then one row per image: "
            f"path,label{LABEL_SEPARATOR}label...)",
            path=path,
        )
    entries, first_line = [], {}
    for line, row in rows[1:]:
        try:
            entries.append(_row_entry(path, line, row, root, first_line))
        except DataError as error:
            skip_or_raise(problems, error, "row skipped")
    names = list(class_names) if class_names is not None else sorted({l for _, labels, _ in entries for l in labels})
    entries = _known_labels_only(path, entries, names, problems)
    if not entries:
        raise DataError(f"{path}: the CSV has no usable rows", path=path)
    if not names:
        raise DataError(f"{path}: no row carries a label; multi-label classification needs at least 1 class", path=path)
    index = {name: i for i, name in enumerate(names)}
    labels = np.zeros([len(entries), len(names)], np.float32)
    for row, (_, row_labels, _) in enumerate(entries):
        labels[row, [index[l] for l in row_labels]] = 1.0
    return MultiLabelSource(names, labels, [image for image, _, _ in entries], str(path))


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-blank rows."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, row) for row in reader]
    except OSError as e:
        raise DataError(f"{path}: cannot read CSV: {e.strerror or e}", path=path) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})", path=path) from None
    except csv.Error as e:
        raise DataError(f"{path}: not a readable CSV file ({e})", path=path) from None
    return [(line, row) for line, row in rows if row and any(cell.strip() for cell in row)]


def _row_entry(path: Path, line: int, row: list[str], root, first_line: dict) -> tuple[str, tuple[str, ...], int]:
    """(image path, labels, line) of one row; DataError naming the CSV and the line."""
    if len(row) != 2:
        raise DataError(
            f"{path}: line {line} has {len(row)} field(s); expected path,labels with the labels "
            f"separated by {LABEL_SEPARATOR!r} (not commas)",
            path=path,
        )
    cell, text = row[0].strip(), row[1].strip()
    if not cell:
        raise DataError(f"{path}: line {line} has an empty path", path=path)
    labels = tuple(label.strip() for label in text.split(LABEL_SEPARATOR)) if text else ()
    if any(not label for label in labels):
        raise DataError(
            f"{path}: line {line}: empty label in {text!r} (separate labels with a single "
            f"{LABEL_SEPARATOR!r}; leave the cell empty for an image without labels)",
            path=path,
        )
    return csv_image_path(path, cell, line, root, first_line, unit="line"), tuple(sorted(set(labels))), line


def _known_labels_only(path: Path, entries: list, names: list[str], problems: ProblemLog | None) -> list:
    """The entries whose labels are all among `names`; the others raise, or are reported and left out."""
    known = set(names)
    kept = []
    for entry in entries:
        unknown = [label for label in entry[1] if label not in known]
        if not unknown:
            kept.append(entry)
            continue
        error = DataError(f"{path}: line {entry[2]}: label(s) {unknown} are not among the classes {names}", path=path)
        skip_or_raise(problems, error, "row skipped")
    return kept


# ------------------------------------------------------------------------------------------- from the config


def multi_label_source_from_spec(
    spec: str,
    class_names: Sequence[str] | None = None,
    fmt: str = "auto",
    problems: ProblemLog | None = None,
    root: str | None = None,
) -> MultiLabelSource:
    """A source from a CSV path; DataError for anything else (folders and TFDS hold one label per image)."""
    if fmt not in ("auto", "csv"):
        raise DataError(
            f"data.format {fmt!r} is not a multi-label format; multi_label reads CSV files "
            f"({','.join(HEADER)} rows): set data.format to csv or auto"
        )
    if spec.startswith("tfds:") or (fmt == "auto" and not spec.lower().endswith(".csv")):
        raise DataError(
            f"{spec}: multi_label reads a CSV file with {','.join(HEADER)} rows (labels separated by "
            f"{LABEL_SEPARATOR!r}); name a .csv file or set data.format: csv",
            path=spec,
        )
    return read_multi_label_csv(spec, class_names, problems, root)


def validation_count(total: int, val_fraction: float) -> int:
    """How many of `total` images a split holds out: round(total * fraction), at least 1 and at most total - 1."""
    return min(max(int(round(total * val_fraction)), 1), total - 1)


def load_multi_label_sources(
    data_config: DataConfig, seed: int, problems: ProblemLog | None = None
) -> tuple[MultiLabelSource, MultiLabelSource]:
    """(train, val) from a `DataConfig`: `data.val` given, or a seeded split of `data.train` by `data.val_fraction`
    (the same images for the same seed). With `problems`, bad rows are reported there and left out."""
    if not data_config.train:
        raise DataError(f"data.train is empty: give a CSV file with {','.join(HEADER)} rows")
    kwargs = {"fmt": data_config.format, "problems": problems, "root": getattr(data_config, "root", None)}
    train = multi_label_source_from_spec(data_config.train, **kwargs)
    if data_config.val:
        return train, multi_label_source_from_spec(data_config.val, class_names=train.class_names, **kwargs)
    if len(train) < 2:
        raise DataError(
            f"{train.description}: {len(train)} usable image(s); a validation split needs at least 2 "
            "(or give data.val)",
            path=train.description,
        )
    return split_records(train, validation_count(len(train), data_config.val_fraction), seed)
