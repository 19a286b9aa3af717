"""What can be predicted: command-line PATH arguments expanded into image files, and each input (a file, encoded
bytes or a uint8 array) turned into the encoded bytes `serving_default` takes, or the reason it cannot be.

Nothing here imports TensorFlow: the files are checked with PIL before a batch is sent, so that one bad image
is reported by name instead of failing the batch with a decoder's traceback.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kerascv_tl.data.files import IMAGE_EXTENSIONS, is_image_file
from kerascv_tl.data.image_check import DEFAULT_MAX_IMAGE_PIXELS, bomb_problem, image_problem
from kerascv_tl.data.paths import display_path

__all__ = ["encode_input", "expand_paths", "input_name", "is_path_input"]

_GLOB_CHARACTERS = frozenset("*?[")


def expand_paths(arguments: Sequence[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """(image files, problems) for PATH arguments: files, folders and glob patterns, in argument order.

    A file is taken as given (whatever its suffix: it is checked when it is read). A folder gives every image file
    under it, recursively, by the readers' rule (`data.files.is_image_file`: an image suffix, nothing hidden,
    hidden folders skipped), sorted by path. A pattern (`*`, `?`, `[...]`; `**` crosses folders) is expanded here,
    so a quoted pattern works as well as one the shell expanded: the image files it matches, and the image files
    under the folders it matches. A file reached twice (two arguments, or a folder and a pattern) is predicted
    once, where it first appeared. Problems are (argument, message): a missing path, a pattern matching no
    image, a folder without images.
    """
    found: list[Path] = []
    seen: set[str] = set()
    problems: list[tuple[str, str]] = []

    def add(path: Path) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            found.append(path)

    for argument in arguments:
        text = os.path.expanduser(os.fspath(argument))
        path = Path(text)
        if path.is_file():
            add(path)
        elif path.is_dir():
            images = _images_under(path)
            if not images:
                problems.append((text, f"no image files in this folder or below ({', '.join(IMAGE_EXTENSIONS)})"))
            for image in images:
                add(image)
        elif _GLOB_CHARACTERS & set(text):
            matches = _pattern_images(text)
            if not matches:
                problems.append((text, "no image file matches this pattern"))
            for image in matches:
                add(image)
        else:
            problems.append((text, "no such file"))
    return found, problems


def _images_under(folder: Path) -> list[Path]:
    images = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if not any(part.startswith(".") for part in relative.parts) and path.is_file() and is_image_file(path):
            images.append(path)
    return sorted(images)


def _pattern_images(pattern: str) -> list[Path]:
    images = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        path = Path(match)
        if path.is_dir():
            images += _images_under(path)
        elif path.is_file() and is_image_file(path):
            images.append(path)
    return images


def is_path_input(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def input_name(index: int, item: Any) -> str:
    """How messages name an input: its path, else its position and kind ("input 3 (bytes)")."""
    if is_path_input(item):
        return display_path(item)
    kind = "array" if isinstance(item, np.ndarray) else "bytes" if isinstance(item, (bytes, bytearray)) else "?"
    return f"input {index} ({kind})"


def encode_input(item: Any, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[bytes | None, str | None]:
    """(encoded image, None) ready for `serving_default`, or (None, the reason it cannot be predicted).

    A path must be an image file that `data.image_check` accepts (a header over `max_pixels` is refused before
    any decoding); bytes are sent as they are once their header passes the same pixel limit; a numpy array must
    be uint8 RGB [height, width, 3] and is encoded as PNG (lossless), so that every input takes the one signature.
    """
    if is_path_input(item):
        path = Path(item)
        if path.is_dir():
            return None, "is a folder; pass its image files (kerascv_tl.predict.expand_paths lists them)"
        if not path.is_file():
            return None, "no such file"
        bomb = bomb_problem(path, max_pixels)
        if bomb is not None:
            return None, bomb
        problem, _ = image_problem(path, max_pixels)
        if problem is not None:
            return None, f"cannot decode image ({problem})"
        return path.read_bytes(), None
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        if not data:
            return None, "cannot decode image (empty: 0 bytes)"
        bomb = bomb_problem(io.BytesIO(data), max_pixels)  # PIL reads the header from a file object too
        return (None, bomb) if bomb is not None else (data, None)
    if isinstance(item, np.ndarray):
        return _encode_array(item, max_pixels)
    return None, (
        f"cannot predict a {type(item).__name__}: give a file path (str or pathlib.Path), encoded image bytes, "
        f"or a uint8 numpy array [height, width, 3]"
    )


def _encode_array(array: np.ndarray, max_pixels: int) -> tuple[bytes | None, str | None]:
    from PIL import Image

    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        return None, (
            f"a numpy array must be RGB pixels, uint8 [height, width, 3]; got {array.dtype} {list(array.shape)}"
        )
    height, width = array.shape[:2]
    if height < 1 or width < 1:
        return None, f"an empty {width}x{height} image"
    if height * width > max_pixels:
        return None, f"{width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), None
