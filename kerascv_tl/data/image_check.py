"""Per-file checks with PIL: will `decode_image` read this file, and should it be given it at all?

`image_problem` answers for one image file, cheaply: the header gives the format and the declared size
(a decompression bomb is refused before any pixel is decoded), then the data is read to its end to find
truncation and corruption. `mask_values` reads a class-index mask's distinct values.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from kerascv_tl.data.paths import display_path

__all__ = ["DECODED_FORMATS", "DEFAULT_MAX_IMAGE_PIXELS", "bomb_problem", "image_problem", "mask_values"]

DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # data.max_image_pixels' default: PIL's own decompression-bomb warning limit

# PIL's format name -> what decode_image reads it as. MPO is the multi-picture JPEG many cameras write.
DECODED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "GIF": "GIF", "BMP": "BMP", "WEBP": "WEBP"}
_FORMAT_NAMES = "JPEG, PNG, GIF, BMP or WebP"
_BMP_UNCOMPRESSED = (0, 3)  # BI_RGB, BI_BITFIELDS; TensorFlow does not decode RLE or embedded JPEG/PNG
_EXIF_ORIENTATION_TAG = 0x0112
_WEBP_HEADER_BYTES = 21  # "RIFF" size "WEBP" "VP8X" chunk-size flags: the flags byte is the 21st
_WEBP_ANIMATION_FLAG = 0x02
_JPEG_DRAFT_SCALE = 8  # libjpeg's smallest DCT scaling: every coefficient is still read, few are transformed
_PIL_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, MemoryError)


def image_problem(path: str | os.PathLike, max_pixels: int) -> tuple[str | None, tuple[int, int] | None]:
    """(reason, None) when the image at `path` is unusable; (None, (width, height)) of the upright image else.

    Checked, in this order: a UTF-8 file name, the file exists and is not empty, PIL recognises a format
    that `decode_image` decodes (JPEG, PNG, GIF, BMP, still WebP; not palette or RLE BMPs, not animated
    WebP), the declared width x height is at most `max_pixels`, and the data is whole (JPEG decoded at 1/8
    scale, PNG chunk CRCs up to IEND, the others decoded). Greyscale, palette, RGBA, CMYK, 16-bit and animated
    GIF images are fine: `decode_image` turns them into RGB (the first frame of an animation).
    """
    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return (
            "file name is not valid UTF-8 (undecodable bytes shown as \\xNN); rename it, e.g. with convmv, "
            "so logs, reports and TensorFlow can carry it"
        ), None
    try:
        size = os.stat(name).st_size
    except FileNotFoundError:
        return "file not found", None
    except OSError as e:
        return f"cannot read the file ({e.strerror or e})", None
    if size == 0:
        return "empty file (0 bytes)", None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(name) as image:
                return _check_open_image(image, max_pixels, name)
        except Image.DecompressionBombError as e:
            # PIL refuses sizes over twice its own limit before we see the header.
            found = _PIL_BOMB_PIXELS.search(str(e))
            declared = f"{int(found.group(1)):,} pixels" if found else "more pixels than PIL allows"
            return _bomb(declared, max_pixels), None
        except UnidentifiedImageError:
            return f"not an image: no {_FORMAT_NAMES} data in it (is it text, HTML or another format?)", None
        except _CORRUPT as e:
            return f"truncated or corrupt image data ({_first_line(e)})", None


def bomb_problem(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> str | None:
    """The reason to refuse `path` when its header declares more than `max_pixels` pixels, else None.

    Only the header is read; files PIL cannot open are left to the decoder to report."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Image.DecompressionBombError as e:
            found = _PIL_BOMB_PIXELS.search(str(e))
            return _bomb(f"{int(found.group(1)):,} pixels" if found else "more pixels than PIL allows", max_pixels)
        except (UnidentifiedImageError, *_CORRUPT):
            return None
    return _bomb(f"{width}x{height} = {width * height:,} pixels", max_pixels) if width * height > max_pixels else None


def _check_open_image(image: Image.Image, max_pixels: int, name: str) -> tuple[str | None, tuple[int, int] | None]:
    kind = DECODED_FORMATS.get(image.format or "")
    if kind is None:
        return f"a {image.format} image; only {_FORMAT_NAMES} images are decoded (convert it to PNG)", None
    width, height = image.size
    if width * height > max_pixels:
        return _bomb(f"{width}x{height} = {width * height:,} pixels", max_pixels), None
    if width < 1 or height < 1:
        return f"declares an empty {width}x{height} image", None
    if kind == "BMP":
        # TensorFlow's BMP decoder reads a palette BMP's indices as grey levels (or fails on 1/4-bit ones).
        if image.mode in ("P", "1"):
            return "a palette BMP: TensorFlow would read its colour indices as grey levels; convert it to PNG", None
        if image.info.get("compression", 0) not in _BMP_UNCOMPRESSED:
            return "a compressed (RLE) BMP, which TensorFlow does not decode; convert it to PNG", None
    if kind == "WEBP" and _animated_webp(name):
        return (
            "an animated WebP: TensorFlow's WebP decoder mis-reads animations, so decode_image refuses them; save "
            "the frame you want as a still image (PNG or WebP)"
        ), None
    if kind == "JPEG":
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        if orientation in (5, 6, 7, 8):  # decode_image turns these a quarter turn
            width, height = height, width
        image.draft(None, (max(1, image.size[0] // _JPEG_DRAFT_SCALE), max(1, image.size[1] // _JPEG_DRAFT_SCALE)))
        image.load()
    elif kind == "PNG":
        image.verify()
    else:
        image.load()
    return None, (int(width), int(height))


def _animated_webp(name: str) -> bool:
    """The animation flag of the VP8X header, the one `decode_image` refuses by (PIL's `is_animated` counts
    frames, and a one-frame file with the flag set would pass it)."""
    with open(name, "rb") as f:
        head = f.read(_WEBP_HEADER_BYTES)
    return len(head) == _WEBP_HEADER_BYTES and head[12:16] == b"VP8X" and bool(head[20] & _WEBP_ANIMATION_FLAG)


def _bomb(declared: str, max_pixels: int) -> str:
    return (
        f"declares {declared}, over the limit of {max_pixels:,} (data.max_image_pixels); not decoded, as it "
        f"may be a decompression bomb"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return display_path(text.splitlines()[0])


def mask_values(path: str | os.PathLike) -> np.ndarray:
    """The distinct raw values of a single-channel mask (palette indices for a palette PNG)."""
    with Image.open(path) as image:
        return np.unique(np.asarray(image))
