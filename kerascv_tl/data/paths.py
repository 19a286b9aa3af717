"""Paths read from configs and annotation files: kept inside their dataset root, and printable.

A CSV row or a COCO `file_name` could say `../../home/me/.ssh/id_rsa`; when a dataset root is declared
(`data.root`, or a COCO file's image folder), such a path is refused instead of read. The test is
lexical (after `..` is resolved, not symlinks), so a dataset may still hold symlinks to its images.
"""

from __future__ import annotations

import os
from pathlib import Path

from kerascv_tl.data.errors import DataError

__all__ = ["csv_image_path", "display_path", "resolve_within"]


def display_path(path: str | os.PathLike | bytes) -> str:
    """`path` as printable text: bytes that are not UTF-8 (kept by Python as surrogates) become `\\xNN`."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def resolve_within(path: str | os.PathLike, root: str | os.PathLike, what: str) -> Path:
    """`path` (relative paths start at `root`) as a normalised path that must lie inside `root`.

    Raises DataError naming `what` (e.g. "data.train", "row 3 of x.csv"), the path and the root.
    """
    root_text = os.path.abspath(os.fspath(root))
    joined = os.path.normpath(os.path.join(root_text, os.fspath(path)))
    if os.path.commonpath([joined, root_text]) != root_text:
        raise DataError(
            f"{display_path(path)}: {what} points outside the dataset root {display_path(root_text)}; "
            f"paths may not leave it",
            path=os.fspath(path),
        )
    return Path(joined)


def csv_image_path(
    csv_path: Path, cell: str, line: int, root: str | os.PathLike | None, first_seen: dict[str, int], unit: str = "row"
) -> str:
    """The image a CSV cell names: relative paths start at the CSV's folder; with `root` it must lie inside it.

    `first_seen` maps each image already listed to its row; a repeat is a DataError naming the CSV and both rows
    (`unit` is how the CSV's messages number them: "row" or "line").
    """
    image = Path(cell)
    resolved = image if image.is_absolute() else csv_path.parent / image
    if root is not None:
        resolve_within(resolved, root, f"{unit} {line} of {csv_path}")
    key = os.path.normpath(os.path.abspath(resolved))
    if key in first_seen:
        raise DataError(
            f"{csv_path}: {unit} {line} lists {cell} again (first at {unit} {first_seen[key]}); only the first is used",
            path=csv_path,
        )
    first_seen[key] = line
    return str(resolved)
