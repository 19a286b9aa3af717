"""Writers for the awkward inputs scraped folders hold: broken files and valid-but-unusual images.

Importable from tests (pytest puts tests/ on sys.path). Every writer returns the path it wrote.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
ORIENTATION_TAG = 0x0112


def solid(colour=RED, height: int = 16, width: int = 24) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = colour
    return image


def noise(height: int = 24, width: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png(path: Path, array: np.ndarray | None = None, mode: str | None = None) -> Path:
    image = Image.fromarray(noise() if array is None else array)
    (image.convert(mode) if mode else image).save(path, format="PNG")
    return path


def jpeg(path: Path, array: np.ndarray | None = None) -> Path:
    Image.fromarray(noise() if array is None else array).save(path, format="JPEG", quality=95)
    return path


def zero_byte(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def truncated(path: Path, fmt: str) -> Path:
    """A JPEG or PNG of noise cut at 60% of its bytes."""
    buffer = io.BytesIO()
    Image.fromarray(noise(48, 48)).save(buffer, format=fmt)
    data = buffer.getvalue()
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path


def text_as_image(path: Path) -> Path:
    path.write_text("<html><body>404 Not Found</body></html>\n")
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(path: Path, width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> Path:
    """A PNG written byte by byte (PIL cannot write 16-bit RGB, nor lie about the size)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )
    return path


def bomb_png(path: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A few hundred bytes declaring width x height RGB pixels: decoding it would need gigabytes."""
    return raw_png(path, width, height, 8, 2, b"\0" * 64)


def rgb16_png(path: Path, rgb: tuple[int, int, int], height: int = 8, width: int = 8) -> Path:
    row = b"\0" + struct.pack(">HHH", *rgb) * width
    return raw_png(path, width, height, 16, 2, row * height)


def grey16_png(path: Path, value: int, height: int = 8, width: int = 8) -> Path:
    Image.fromarray(np.full((height, width), value, np.uint16)).save(path, format="PNG")
    return path


def cmyk_jpeg(path: Path, colour=RED) -> Path:
    Image.fromarray(solid(colour)).convert("CMYK").save(path, format="JPEG", quality=95)
    return path


def palette_png(path: Path, colour=RED) -> Path:
    image = Image.fromarray(solid(colour)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    image.save(path, format="PNG")
    return path


def animated_gif(path: Path, first=RED, second=(0, 0, 255)) -> Path:
    frames = [Image.fromarray(solid(first)), Image.fromarray(solid(second))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def exif_rotated_jpeg(path: Path, upright: np.ndarray, orientation: int = 6) -> Path:
    """A JPEG whose stored pixels, turned by EXIF `orientation` 6 (90 degrees clockwise), show `upright`."""
    assert orientation == 6
    image = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))
    exif = image.getexif()
    exif[ORIENTATION_TAG] = orientation
    image.save(path, format="JPEG", quality=95, exif=exif)
    return path


def non_utf8_name(folder: Path, stem: bytes = b"caf\xe9", suffix: str = ".png") -> Path:
    """A valid PNG whose name holds a Latin-1 byte that is not UTF-8 (Python keeps it as a surrogate)."""
    name = os.fsdecode(stem + suffix.encode())
    return png(folder / name)


def valid_oddities(folder: Path) -> list[Path]:
    """The unusual but valid images every reader must accept: CMYK, 16-bit, grey, RGBA, palette, GIF, EXIF."""
    return [
        cmyk_jpeg(folder / "cmyk.jpg"),
        rgb16_png(folder / "deep.png", (65535, 0, 0)),
        png(folder / "grey.png", mode="L"),
        png(folder / "rgba.png", mode="RGBA"),
        palette_png(folder / "palette.png"),
        animated_gif(folder / "anim.gif"),
        exif_rotated_jpeg(folder / "phone.jpg", noise(16, 40)),
    ]


def broken_images(folder: Path, empty_name: str = "empty.png") -> None:
    """One of each file a data check must refuse: empty, truncated JPEG and PNG, text, a bomb, a non-UTF-8 name."""
    zero_byte(folder / empty_name)
    truncated(folder / "cut.jpg", "JPEG")
    truncated(folder / "cut.png", "PNG")
    text_as_image(folder / "page.jpg")
    bomb_png(folder / "bomb.png")
    non_utf8_name(folder)
