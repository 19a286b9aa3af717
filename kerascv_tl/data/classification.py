"""Labelled image sources for classification: class-per-folder trees, CSV files and TFDS datasets.

A source is a list of (image, label) pairs plus class names in a stable order. Folder class names are
the sorted sub-folder names; CSV class names are the sorted distinct labels (or given explicitly);
TFDS class names come from the dataset's label feature.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerascv_tl.data.decode import decode_image
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.paths import resolve_within
from kerascv_tl.data.problems import ProblemLog, skip_or_raise
from kerascv_tl.data.tolerant import map_skipping_errors

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".bmp"}


@dataclass
class ImageSource:
    """Labelled images: files on disk (`paths`) or a TFDS split (`tfds_name`)."""

    class_names: list[str]
    labels: np.ndarray  # int32 [N]
    paths: list[str] | None = None
    tfds_name: str | None = None
    tfds_split: str | None = None
    tfds_data_dir: str | None = None
    description: str = ""
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(len(self.labels))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: np.ndarray, description: str) -> "ImageSource":
        if self.paths is None:
            raise ValueError("TFDS sources are split by TFDS split names, not subset")
        return ImageSource(self.class_names, self.labels[indices], [self.paths[i] for i in indices], description=description)

    def decoded(self, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
        """(uint8 [H, W, 3] image, int32 label) pairs; file lists are shuffled before decoding (cheap)."""
        if self.paths is not None:
            # Bytes, not str: a file name that is not UTF-8 still opens (check-data reports it all the same).
            paths = [os.fsencode(p) for p in self.paths]
            ds = tf.data.Dataset.from_tensor_slices((paths, self.labels.astype(np.int32)))
            if shuffle:
                ds = ds.shuffle(len(self), seed=seed, reshuffle_each_iteration=False)
            # A file that fails to decode here (it passed the data check) is left out and named on stderr.
            return map_skipping_errors(ds, _read_and_decode, lambda path, label: path)
        import tensorflow_datasets as tfds

        ds = tfds.load(self.tfds_name, split=self.tfds_split, data_dir=self.tfds_data_dir, as_supervised=True,
                       download=False, shuffle_files=shuffle, read_config=tfds.ReadConfig(shuffle_seed=seed))
        return ds.map(lambda image, label: (_to_rgb(image), tf.cast(label, tf.int32)),
                      num_parallel_calls=tf.data.AUTOTUNE)

    def fingerprint(self) -> str:
        """Changes when the file list, a file's size or modification time, or the labels change."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            if self.paths is not None:
                for path, label in zip(self.paths, self.labels):
                    stat = os.stat(path)
                    line = f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                    digest.update(line.encode("utf-8", "surrogateescape"))
            else:
                digest.update(f"tfds:{self.tfds_name}:{self.tfds_split}:{len(self)}".encode())
            digest.update("\0".join(self.class_names).encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


def _read_and_decode(path, label):
    return decode_image(tf.io.read_file(path)), label


def _to_rgb(image):
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return tf.cast(image[..., :3], tf.uint8)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def folder_source(root: str | os.PathLike, class_names: list[str] | None = None,
                  problems: ProblemLog | None = None) -> ImageSource:
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
        files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p)) if folder.is_dir() else []
        if not files and class_names is None:
            skip_or_raise(problems, DataError(
                f"{folder}: class folder has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})", path=folder),
                "class kept without images")
        paths += [str(p) for p in files]
        labels += [index] * len(files)
    if not paths:
        raise DataError(f"{root}: no images in any class folder", path=root)
    return ImageSource(names, np.asarray(labels, np.int32), paths, description=str(root))


def csv_source(path: str | os.PathLike, class_names: list[str] | None = None, problems: ProblemLog | None = None,
               root: str | os.PathLike | None = None) -> ImageSource:
    """CSV with `path,label` rows (a header row is optional); relative paths resolve against the CSV's folder.

    Rows that are short, list an image again, name a label outside `class_names`, or (with a dataset `root`)
    point outside `root` are errors, or with `problems` reported and left out.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [(line, row) for line, row in enumerate(csv.reader(f), start=1)
                    if row and any(cell.strip() for cell in row)]
    except OSError as e:
        raise DataError(f"{path}: cannot read CSV: {e.strerror or e}", path=path) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})", path=path) from None
    if rows and [c.strip().lower() for c in rows[0][1][:2]] == ["path", "label"]:
        rows = rows[1:]
    entries, first_row = [], {}
    for line, row in rows:
        try:
            entries.append(_csv_entry(path, line, row, root, first_row))
        except DataError as error:
            skip_or_raise(problems, error, "row skipped")
    if not entries:
        raise DataError(f"{path}: CSV has no usable rows", path=path)
    names = list(class_names) if class_names is not None else sorted({label for _, label, _ in entries})
    index = {name: i for i, name in enumerate(names)}
    unknown = [(line, label) for _, label, line in entries if label not in index]
    if unknown and problems is None:
        raise DataError(f"{path}: labels {sorted({label for _, label in unknown})} are not among the classes {names}",
                        path=path)
    for line, label in unknown:
        problems.add(path, f"row {line}: label {label!r} is not among the classes {names}", "row skipped")
    entries = [entry for entry in entries if entry[1] in index]
    if len(names) < 2:
        raise DataError(f"{path}: found {len(names)} class(es); classification needs at least 2", path=path)
    return ImageSource(names, np.asarray([index[l] for _, l, _ in entries], np.int32), [p for p, _, _ in entries],
                       description=str(path))


def _csv_entry(path: Path, line: int, row: list[str], root, first_row: dict) -> tuple[str, str, int]:
    """(image path, label, row number) of one CSV row; DataError naming the CSV and the row."""
    if len(row) < 2:
        raise DataError(f"{path}: row {line} has {len(row)} field(s); expected path,label", path=path)
    image = Path(row[0].strip())
    resolved = image if image.is_absolute() else path.parent / image
    if root is not None:
        resolve_within(resolved, root, f"row {line} of {path}")
    key = os.path.normpath(os.path.abspath(resolved))
    if key in first_row:
        raise DataError(f"{path}: row {line} lists {row[0].strip()} again (first at row {first_row[key]}); only the "
                        f"first is used", path=path)
    first_row[key] = line
    return str(resolved), row[1].strip(), line


def stratified_split(source: ImageSource, val_fraction: float, seed: int) -> tuple[ImageSource, ImageSource]:
    """Seeded split keeping each class's proportion; every class with >= 2 images gets >= 1 in each part."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in range(source.num_classes):
        members = np.flatnonzero(source.labels == label)
        rng.shuffle(members)
        n_val = int(round(len(members) * val_fraction))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val_idx += members[:n_val].tolist()
        train_idx += members[n_val:].tolist()
    train_idx, val_idx = np.sort(np.asarray(train_idx, np.int64)), np.sort(np.asarray(val_idx, np.int64))
    return (source.subset(train_idx, f"{source.description} (train split)"),
            source.subset(val_idx, f"{source.description} (val split, {val_fraction:.0%})"))


def source_from_spec(spec: str, fmt: str = "auto", class_names=None, tfds_data_dir=None, tfds_split="train",
                     problems: ProblemLog | None = None, root: str | None = None) -> ImageSource:
    if fmt == "tfds" or spec.startswith("tfds:"):
        return tfds_source(spec.removeprefix("tfds:"), tfds_split, tfds_data_dir)
    if fmt == "csv" or (fmt == "auto" and spec.lower().endswith(".csv")):
        return csv_source(spec, class_names, problems, root)
    if fmt in ("auto", "folder"):
        return folder_source(spec, class_names, problems)
    raise DataError(f"data.format {fmt!r} is not a classification format (folder, csv, tfds)")


def load_classification_sources(data_config, seed: int,
                                problems: ProblemLog | None = None) -> tuple[ImageSource, ImageSource]:
    """(train, val) from a `DataConfig`: val given, or a seeded stratified split of train. With `problems`,
    bad rows and empty class folders are reported there and left out (see `kerascv_tl.data.check`)."""
    if not data_config.train:
        raise DataError("data.train is empty: give a class-per-folder tree, a CSV file or tfds:NAME")
    kwargs = {"fmt": data_config.format, "tfds_data_dir": data_config.tfds_data_dir, "problems": problems,
              "root": getattr(data_config, "root", None)}
    train = source_from_spec(data_config.train, tfds_split=data_config.tfds_train_split, **kwargs)
    if data_config.val:
        val = source_from_spec(data_config.val, class_names=train.class_names, tfds_split=data_config.tfds_val_split,
                               **kwargs)
        return train, val
    if train.tfds_name is not None:
        val = tfds_source(train.tfds_name, data_config.tfds_val_split, data_config.tfds_data_dir)
        return train, val
    return stratified_split(train, data_config.val_fraction, seed)


def network_available(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def prepared_tfds_builder(name: str, data_dir: str | None = None):
    """A TFDS builder whose data is prepared (downloading it when there is a network). Offline `tfds.load`
    retries downloads for minutes; this fails in seconds instead, saying what to do."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError and friends
        raise DataError(f"tfds:{name}: {str(e).splitlines()[0]}") from None
    if not builder.is_prepared():
        if not network_available():
            raise DataError(
                f"tfds:{name} is not prepared in {builder.data_dir} and there is no network to download it. "
                f"Prepare it on a connected machine (`tfds build {name}` or tfds.load('{name}')) and copy "
                f"the folder, then set data.tfds_data_dir."
            )
        builder.download_and_prepare()
    return builder


def tfds_source(name: str, split: str, data_dir: str | None = None) -> ImageSource:
    """A TFDS split of (image, label) examples; see `prepared_tfds_builder` for the offline behaviour."""
    builder = prepared_tfds_builder(name, data_dir)
    _, label_key = builder.info.supervised_keys or ("image", "label")
    label_feature = builder.info.features[label_key]
    names = list(getattr(label_feature, "names", None) or [str(i) for i in range(label_feature.num_classes)])
    count = 0  # unknown until read when TFDS has no split metadata
    if builder.info.splits:
        try:  # accepts TFDS split expressions such as "train+validation" or "train[:80%]"
            count = builder.info.splits[split].num_examples
        except (KeyError, ValueError) as e:
            raise DataError(f"tfds:{name} has no split {split!r} ({e}); splits: {', '.join(builder.info.splits)}") from None
    labels = np.zeros([count], np.int32)  # per-example labels are read lazily from the dataset
    return ImageSource(names, labels, None, name, split, data_dir, description=f"tfds:{name}[{split}]")
