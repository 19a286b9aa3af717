"""The data check behind `kerascv-tl check-data CONFIG` and the start of every `train`.

It reads the config's sources with a `ProblemLog`, so that the readers report bad CSV rows, annotation
files, boxes and image/mask pairs instead of stopping at the first, then opens every image (and mask)
with PIL (`image_check.image_problem`), and for detection compares each image's upright size with its
annotation's, for segmentation looks for mask values outside the class list. Every problem names its
file and says what is wrong; `DataCheck.summary` counts them.

`data.on_bad` decides what follows (`apply_on_bad`): `skip` (default) logs every problem loudly and trains
on what is left; `fail` logs them and raises `DataCheckError` before any training. What cannot be
skipped (a config path outside `data.root`, an unreadable annotation file, a classification dataset with
one class, nothing left to train on) is a plain `DataError` either way.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kerascv_tl.data.class_balance import imbalance_warning
from kerascv_tl.data.errors import DataCheckError, DataError
from kerascv_tl.data.image_check import image_problem
from kerascv_tl.data.paths import resolve_within
from kerascv_tl.data.problems import ProblemLog
from kerascv_tl.data.records import DetectionSource, ImageSource, Source

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig, RecipeConfig

__all__ = ["DataCheck", "apply_on_bad", "check_data", "class_counts", "within_data_root"]

log = logging.getLogger(__name__)

_PATH_KEYS = ("train", "val", "image_root", "val_image_root")


@dataclass
class DataCheck:
    """The sources with every bad file left out, the problems found, and how many files were opened."""

    train: Source
    val: Source
    problems: ProblemLog = field(default_factory=ProblemLog)
    files_checked: int = 0

    def headline(self) -> str:
        """One line: files checked, problems by action, examples kept."""
        sizes = f"{_size(self.train)} training and {_size(self.val)} validation examples kept"
        if not self.problems:
            return f"data check: {self.files_checked} file(s) checked, no problems; {sizes}"
        actions = ", ".join(f"{count} {action}" for action, count in self.problems.counts().items())
        return f"data check: {self.files_checked} file(s) checked, {len(self.problems)} problem(s) ({actions}); {sizes}"

    def summary(self) -> str:
        """The headline, then the examples per class and a class imbalance warning (`class_lines`)."""
        return "\n".join([self.headline(), *self.class_lines()])

    def class_counts(self) -> dict | None:
        """{"unit": images | boxes, "train": {class: count}, "val": {...}}; None where classes are not counted
        (segmentation, multi-label, TFDS)."""
        train, val = class_counts(self.train), class_counts(self.val)
        if train is None:
            return None
        return {"unit": train[0], "train": train[1], "val": None if val is None else val[1]}

    def class_lines(self, with_warning: bool = True) -> list[str]:
        """Training (and validation) counts per class, then `imbalance`'s warning when there is one."""
        counts = self.class_counts()
        if counts is None:
            return []
        unit = counts["unit"]
        lines = [f"training {unit} per class: {_counts_text(counts['train'])}"]
        if counts["val"] is not None:
            lines.append(f"validation {unit} per class: {_counts_text(counts['val'])}")
        warning = self.imbalance() if with_warning else None
        return lines + ([f"warning: {warning}"] if warning else [])

    def imbalance(self) -> str | None:
        """`imbalance_warning` of the training counts per class (largest over smallest past 10:1), or None."""
        counts = self.class_counts()
        return None if counts is None else imbalance_warning(counts["train"], counts["unit"])

    def to_dict(self) -> dict:
        return {
            "files_checked": self.files_checked,
            "num_train": _size(self.train),
            "num_val": _size(self.val),
            "num_problems": len(self.problems),
            "actions": self.problems.counts(),
            "problems": list(self.problems),
            "class_counts": self.class_counts(),
        }


def class_counts(source: Source | None) -> tuple[str, dict[str, int]] | None:
    """("images", images per class) of a classification source with files, ("boxes", boxes per class) of a
    detection source; None for other sources (and TFDS splits, whose labels are read while training)."""
    if isinstance(source, DetectionSource):
        labels = [record.labels for record in source.records]
        unit, labels = "boxes", np.concatenate(labels) if labels else np.zeros([0], np.int64)
    elif isinstance(source, ImageSource) and source.paths is not None:
        unit, labels = "images", source.labels
    else:
        return None
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(source.class_names))
    return unit, {name: int(count) for name, count in zip(source.class_names, counts)}


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def check_data(config: RecipeConfig) -> DataCheck:
    """Reads `config.data` for `config.task` and checks every file; see the module docstring."""
    from kerascv_tl.tasks.registry import get_task

    data = within_data_root(config.data)
    problems = ProblemLog()
    train, val = get_task(config.task).read_sources(data, config.seed, problems)
    checked = 0
    kept = []
    for source, name in ((train, "training"), (val, "validation")):
        good, opened = _checked(source, data, problems)
        checked += opened
        if _size(good) == 0 and source.image_paths() is not None:
            raise DataError(
                f"{source.description}: no usable {name} images left; {len(problems)} problem(s) "
                f"found (kerascv-tl check-data lists them)",
                path=source.description,
            )
        kept.append(good)
    train, val = kept
    train = _without_validation_files(train, val, problems)
    return DataCheck(train, val, problems, checked)


def apply_on_bad(check: DataCheck, on_bad: str) -> None:
    """Logs every problem and the summary; raises DataCheckError when there are problems and on_bad is fail."""
    counts, warning = check.class_lines(with_warning=False), check.imbalance()
    if counts:  # one line, so that the console keeps its one "data check: " line per record
        log.info("data check: %s", "; ".join(counts))
    if warning:
        log.warning("data check: %s", warning)
    if not check.problems:
        log.info("%s", check.headline())
        return
    for problem in check.problems:
        log.warning("bad data: %s [%s]", problem["message"], problem["action"] if on_bad == "skip" else "fail")
    if on_bad == "fail":
        raise DataCheckError(
            f"{check.headline()}. data.on_bad is fail, so training did not start: fix the "
            f"file(s) listed above, or set data.on_bad: skip to train without them"
        )
    log.warning("!! %s. data.on_bad is skip: training goes on without them (listed above) !!", check.headline())


def within_data_root(data_config: DataConfig):
    """A copy of the data config whose paths start at `data.root` and stay inside it (unchanged without a root)."""
    root = getattr(data_config, "root", None)
    if not root:
        return data_config
    if not Path(root).is_dir():
        raise DataError(f"{root}: data.root is not a folder", path=root)
    changes = {}
    for key in _PATH_KEYS:
        value = getattr(data_config, key)
        if value and not value.startswith("tfds:"):
            changes[key] = str(resolve_within(value, root, f"data.{key}"))
    classes = data_config.classes
    if classes and (os.sep in classes or "/" in classes or Path(classes).suffix.lower() in (".yaml", ".yml", ".json")):
        changes["classes"] = str(resolve_within(classes, root, "data.classes"))
    return dataclasses.replace(data_config, **changes)


def _size(source: Source | None) -> int:
    return len(source) if source is not None else 0


def _checked(source: Source, data_config: DataConfig, problems: ProblemLog) -> tuple[Source, int]:
    """(the source without its bad files, number of files opened). Nothing on disk (TFDS): nothing to check."""
    paths = source.image_paths()
    if paths is None:
        return source, 0
    bad = _bad_images(paths, source.expected_sizes(), data_config.max_image_pixels, problems, source.size_origin)
    opened = len(paths) + source.check_contents(problems, data_config)
    return source.without(bad), opened


def _bad_images(paths, sizes, max_pixels: int, problems: ProblemLog, size_source: str = "") -> set[int]:
    """Indices of the images that fail `image_problem` or whose upright size differs from `sizes`."""
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while it decodes
        results = list(pool.map(lambda p: image_problem(p, max_pixels), paths))
    bad = set()
    for index, (path, (reason, size)) in enumerate(zip(paths, results)):
        if reason is None and sizes is not None and tuple(size) != tuple(sizes[index]):
            reason = f"the image is {size[0]}x{size[1]} (upright) but {size_source} {sizes[index][0]}x{sizes[index][1]}"
        if reason is not None:
            problems.add(path, reason)
            bad.add(index)
    return bad


def _without_validation_files(train: Source, val: Source, problems: ProblemLog) -> Source:
    """Leaves out of training the files that are also validation files (they would leak into the metrics)."""
    train_paths, val_paths = train.image_paths(), val.image_paths()
    if not train_paths or not val_paths:
        return train
    held_out = {os.path.normpath(os.path.abspath(p)) for p in val_paths}
    shared = [i for i, p in enumerate(train_paths) if os.path.normpath(os.path.abspath(p)) in held_out]
    if not shared:
        return train
    for i in shared:
        problems.add(
            train_paths[i],
            "is also a validation file; left out of training so that it cannot inflate the validation metrics",
            "file skipped",
        )
    return train.without(set(shared))
