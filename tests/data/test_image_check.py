"""Per-file checks: each broken file gets its reason; each unusual but valid image passes and decodes to RGB."""

from __future__ import annotations

import bad_files
import numpy as np
import pytest

from kerascv_tl.data.decode import decode_image, read_image_file
from kerascv_tl.data.errors import ImageDecodeError
from kerascv_tl.data.image_check import bomb_problem, image_problem

LIMIT = 89_478_485


def _palette_bmp(path):
    from PIL import Image

    Image.fromarray(bad_files.solid()).convert("P").save(path, format="BMP")
    return path


@pytest.mark.parametrize(
    "name, write, expected",
    [
        ("empty.jpg", bad_files.zero_byte, "empty file (0 bytes)"),
        ("cut.jpg", lambda p: bad_files.truncated(p, "JPEG"), "truncated or corrupt image data"),
        ("cut.png", lambda p: bad_files.truncated(p, "PNG"), "truncated or corrupt image data"),
        ("page.jpg", bad_files.text_as_image, "not an image"),
        ("bomb.png", bad_files.bomb_png, "declares 900,000,000 pixels, over the limit of 89,478,485"),
        ("big.png", lambda p: bad_files.bomb_png(p, 12_000, 12_000), "declares 12000x12000 = 144,000,000 pixels"),
        ("palette.bmp", lambda p: _palette_bmp(p), "a palette BMP: TensorFlow would read its colour indices as grey"),
    ],
)
def test_bad_files_are_named_with_their_problem(tmp_path, name, write, expected):
    path = tmp_path / name
    write(path)
    reason, size = image_problem(path, LIMIT)
    assert reason is not None and expected in reason and size is None


def test_decompression_bomb_is_refused_from_its_header_before_decoding(tmp_path):
    bomb = bad_files.bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 500  # the data could not even fill the declared size
    assert "decompression bomb" in bomb_problem(bomb)
    with pytest.raises(ImageDecodeError, match="bomb.png: declares 900,000,000 pixels"):
        read_image_file(bomb)
    reason, _ = image_problem(bad_files.png(tmp_path / "small.png"), 100)  # 24x24 = 576 > 100
    assert "declares 24x24 = 576 pixels, over the limit of 100 (data.max_image_pixels)" in reason


def test_missing_file_and_non_utf8_name(tmp_path):
    assert image_problem(tmp_path / "gone.jpg", LIMIT)[0] == "file not found"
    reason, _ = image_problem(bad_files.non_utf8_name(tmp_path), LIMIT)
    assert "file name is not valid UTF-8" in reason


def _reddish(image: np.ndarray) -> bool:
    r, g, b = image.reshape(-1, 3).mean(axis=0)
    return r > 200 and g < 60 and b < 60


@pytest.mark.parametrize(
    "name, write",
    [
        ("cmyk.jpg", bad_files.cmyk_jpeg),
        ("rgba.png", lambda p: bad_files.png(p, np.dstack([bad_files.solid(), np.full((16, 24), 90, np.uint8)]))),
        ("palette.png", bad_files.palette_png),
        ("animated.gif", bad_files.animated_gif),  # first frame red, second blue
        ("deep.png", lambda p: bad_files.rgb16_png(p, (65535, 0, 0), 16, 24)),
    ],
)
def test_unusual_valid_images_pass_and_decode_to_red(tmp_path, name, write):
    path = write(tmp_path / name)
    reason, size = image_problem(path, LIMIT)
    assert reason is None and size == (24, 16)
    image = decode_image(path.read_bytes()).numpy()
    assert image.shape == (16, 24, 3) and image.dtype == np.uint8 and _reddish(image)


def test_greyscale_and_16_bit_values_scale_to_8_bits(tmp_path):
    grey = bad_files.png(tmp_path / "grey.png", bad_files.solid((120, 120, 120)), mode="L")
    assert image_problem(grey, LIMIT)[0] is None
    np.testing.assert_array_equal(np.unique(decode_image(grey.read_bytes()).numpy()), [120])
    # 16-bit samples keep their brightness (40000 / 65535 -> 156 / 255); PIL's convert("RGB") would clip to 255.
    deep_grey = bad_files.grey16_png(tmp_path / "grey16.png", 40_000)
    assert image_problem(deep_grey, LIMIT)[0] is None
    np.testing.assert_array_equal(np.unique(decode_image(deep_grey.read_bytes()).numpy()), [156])
    deep_rgb = bad_files.rgb16_png(tmp_path / "rgb16.png", (65535, 32896, 0))
    np.testing.assert_array_equal(decode_image(deep_rgb.read_bytes()).numpy()[0, 0], [255, 128, 0])


def test_exif_rotated_jpeg_reports_its_upright_size(tmp_path):
    path = bad_files.exif_rotated_jpeg(tmp_path / "phone.jpg", bad_files.noise(16, 40))
    assert image_problem(path, LIMIT) == (None, (40, 16))
    assert decode_image(path.read_bytes()).shape == (16, 40, 3)
