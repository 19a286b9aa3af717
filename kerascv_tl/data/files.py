"""Image files on disk, shared by every reader: which files are images, their upright size from the header,
required files, and the seeded train/validation splits.

Nothing here decodes pixels: `image_size` reads only the header (and the JPEG EXIF orientation).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from kerascv_tl.data.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "image_files",
    "image_size",
    "is_image_file",
    "require_file",
    "split_records",
    "stratified_split",
]

# The suffixes (lower case) of the image files the readers pick up, in the order VOC looks for an image.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
_EXIF_ORIENTATION_TAG = 0x0112


def is_image_file(path: Path) -> bool:
    """True for a name with an image suffix (any case) that is not hidden."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder` (hidden ones left out), sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of the upright image from its header, without decoding the pixels.

    JPEG EXIF orientations 5..8 swap width and height, as `decode_image` turns those images upright; other
    formats are not re-oriented by `decode_image`, so their tag is ignored here too.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.format == "JPEG":
                orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
                if orientation in (5, 6, 7, 8):
                    width, height = height, width
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found", path=path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot read the image header ({e})", path=path) from None
    return int(width), int(height)


def require_file(path: Path, what: str, referenced_by: str | None = None) -> None:
    """DataError "`path`: `what` not found (referenced by ...)" unless `path` is a file."""
    if not path.is_file():
        source = f" (referenced by {referenced_by})" if referenced_by else ""
        raise DataError(f"{path}: {what} not found{source}", path=path)


class _Subsettable(Protocol):
    description: str

    def __len__(self) -> int: ...

    def subset(self, indices, description: str): ...


S = TypeVar("S", bound=_Subsettable)


def split_records(source: S, val_count: int, seed: int) -> tuple[S, S]:
    """Seeded random split into (train, val) with `val_count` validation images; both keep source order.

    The one rule for detection and segmentation, so that both hold out the same images of the same list for
    the same seed (only `len()`, `.description` and `.subset()` are used).
    """
    total = len(source)
    if not 0 < val_count < total:
        raise DataError(
            f"{source.description}: cannot hold out {val_count} of {total} images for validation "
            f"(need 0 < val_count < {total})"
        )
    permutation = np.random.default_rng(seed).permutation(total)
    val_idx, train_idx = np.sort(permutation[:val_count]), np.sort(permutation[val_count:])
    train = source.subset(train_idx.tolist(), f"{source.description} (train split, seed {seed})")
    val = source.subset(val_idx.tolist(), f"{source.description} (val split, {val_count} images, seed {seed})")
    return train, val


class _Labelled(_Subsettable, Protocol):
    labels: np.ndarray
    num_classes: int


L = TypeVar("L", bound=_Labelled)


def stratified_split(source: L, val_fraction: float, seed: int) -> tuple[L, L]:
    """Seeded split keeping each class's proportion; every class with >= 2 images gets >= 1 in each part."""
    rng = np.random.default_rng(seed)
    train_idx: list[int] = []
    val_idx: list[int] = []
    for label in range(source.num_classes):
        members = np.flatnonzero(source.labels == label)
        rng.shuffle(members)
        n_val = int(round(len(members) * val_fraction))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val_idx += members[:n_val].tolist()
        train_idx += members[n_val:].tolist()
    train, val = np.sort(np.asarray(train_idx, np.int64)), np.sort(np.asarray(val_idx, np.int64))
    return (
        source.subset(train, f"{source.description} (train split)"),
        source.subset(val, f"{source.description} (val split, {val_fraction:.0%})"),
    )
