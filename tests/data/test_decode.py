"""The shared decoder: formats, colour modes, EXIF orientation, graph/tf.data/SavedModel use, errors."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from kerascv_tl.data.decode import apply_orientation, decode_image, exif_orientation, read_image_file
from kerascv_tl.data.errors import DataError, ImageDecodeError

ORIENTATION_TAG = 0x0112
JPEG_MEAN_TOLERANCE = 3.0  # mean absolute difference in 0..255; a wrong rotation/flip is far above this


def pattern(height: int = 40, width: int = 24) -> np.ndarray:
    """A non-square image whose every rotation and flip looks different; 8-px blocks survive JPEG."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 2] = 40
    image[:8, :8] = (255, 0, 0)  # top-left red block
    image[-8:, :] = (0, 0, 255)  # blue bottom band
    image[:, -8:, 1] = 200  # green right band
    image[16:24, 8:16] = (255, 255, 255)
    return image


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def pil_upright(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: float = JPEG_MEAN_TOLERANCE) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == np.uint8
    diff = np.abs(actual.astype(np.int32) - expected.astype(np.int32)).mean()
    assert diff < tolerance, diff


def big_endian_tiff(orientation: int) -> bytes:
    """A TIFF block in Motorola ("MM") byte order: IFD0 with a Make entry and then the orientation."""
    entries = struct.pack(">HHI4s", 0x010F, 2, 4, b"Abc\0")  # ASCII, inline
    entries += struct.pack(">HHIHH", ORIENTATION_TAG, 3, 1, orientation, 0)  # SHORT, left-justified
    return b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + struct.pack(">I", 0)


def little_endian_tiff(
    entries: list[tuple[int, int, int, bytes]], ifd_offset: int = 8, count: int | None = None
) -> bytes:
    """A TIFF block in Intel ("II") byte order; each entry is (tag, type, count, 4-byte value field)."""
    body = b"".join(struct.pack("<HHI", tag, kind, n) + value for tag, kind, n, value in entries)
    count = len(entries) if count is None else count
    header = b"II\x2a\x00" + struct.pack("<I", ifd_offset)
    return header + struct.pack("<H", count) + body + struct.pack("<I", 0)


def with_app1(jpeg: bytes, tiff: bytes) -> bytes:
    """Inserts an APP1 Exif segment holding `tiff` right after the JPEG's SOI marker."""
    assert jpeg[:2] == b"\xff\xd8"
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.fixture(scope="module")
def oriented_jpegs(tmp_path_factory) -> dict[int, Path]:
    """24x40 JPEGs with EXIF orientation 1..8 as PIL writes it (little endian, after a Make tag)."""
    folder = tmp_path_factory.mktemp("oriented")
    paths = {}
    for k in range(1, 9):
        img = Image.fromarray(pattern())
        exif = img.getexif()
        exif[0x010F] = "kerascv-tl"
        exif[ORIENTATION_TAG] = k
        path = folder / f"orientation_{k}.jpg"
        img.save(path, quality=95, exif=exif)
        paths[k] = path
    return paths


@pytest.fixture(scope="module")
def plain_jpeg(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plain") / "plain.jpg"
    Image.fromarray(pattern()).save(path, quality=95)
    return path


# --- formats and colour modes -------------------------------------------------------------------------


def test_jpeg_decodes_to_rgb_like_pil(plain_jpeg):
    image = decode_image(read_bytes(plain_jpeg))
    assert image.dtype == tf.uint8
    assert image.shape.as_list() == [40, 24, 3]
    assert_close(image.numpy(), pil_upright(plain_jpeg))
    assert_close(image.numpy(), pattern(), tolerance=6.0)


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
def test_lossless_formats_decode_exactly(tmp_path, fmt):
    expected = np.random.default_rng(0).integers(0, 256, (20, 12, 3), dtype=np.uint8)
    path = tmp_path / f"image.{fmt.lower()}"
    Image.fromarray(expected).save(path, fmt)
    np.testing.assert_array_equal(decode_image(read_bytes(path)).numpy(), expected)


def test_animated_gif_gives_first_frame(tmp_path):
    first = np.zeros((20, 12, 3), np.uint8)
    first[:] = (255, 0, 0)
    first[:10, :6] = (0, 0, 255)
    second = np.zeros_like(first)
    second[:] = (0, 255, 0)
    path = tmp_path / "anim.gif"
    Image.fromarray(first).save(path, save_all=True, append_images=[Image.fromarray(second)], duration=100, loop=0)
    with Image.open(path) as img:
        assert img.n_frames == 2
    image = decode_image(read_bytes(path)).numpy()
    np.testing.assert_array_equal(image, first)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P"])
def test_png_colour_modes_become_rgb(tmp_path, mode):
    rgba = np.random.default_rng(1).integers(0, 256, (20, 12, 4), dtype=np.uint8)
    if mode == "P":
        img = Image.fromarray(rgba[..., :3]).quantize(16)
    else:
        img = Image.fromarray(rgba, "RGBA").convert(mode)
    assert img.mode == mode
    path = tmp_path / f"{mode}.png"
    img.save(path)
    image = decode_image(read_bytes(path)).numpy()
    assert image.shape == (20, 12, 3)
    with Image.open(path) as reread:
        expected = np.asarray(reread.convert("RGB"))  # alpha dropped, grey replicated, palette looked up
    np.testing.assert_array_equal(image, expected)
    if mode == "RGBA":
        np.testing.assert_array_equal(image, rgba[..., :3])


def test_static_shape_is_rank_3_rgb():
    spec_fn = tf.function(decode_image, input_signature=[tf.TensorSpec([], tf.string)])
    out = spec_fn.get_concrete_function().structured_outputs
    assert out.shape.as_list() == [None, None, 3]
    assert out.dtype == tf.uint8


# --- EXIF orientation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil_exif_transpose(oriented_jpegs, orientation):
    path = oriented_jpegs[orientation]
    data = read_bytes(path)
    assert int(exif_orientation(data)) == orientation
    expected = pil_upright(path)
    assert expected.shape == ((40, 24, 3) if orientation <= 4 else (24, 40, 3))
    assert_close(decode_image(data).numpy(), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_big_endian_exif_matches_pil(tmp_path, plain_jpeg, orientation):
    path = tmp_path / "motorola.jpg"
    path.write_bytes(with_app1(read_bytes(plain_jpeg), big_endian_tiff(orientation)))
    with Image.open(path) as img:
        assert img.getexif()[ORIENTATION_TAG] == orientation  # PIL reads the hand-built block
    data = read_bytes(path)
    assert int(exif_orientation(data)) == orientation
    assert_close(decode_image(data).numpy(), pil_upright(path))


def test_orientation_is_one_without_exif_or_for_other_formats(tmp_path, plain_jpeg):
    assert int(exif_orientation(read_bytes(plain_jpeg))) == 1
    png = tmp_path / "image.png"
    Image.fromarray(pattern()).save(png)
    assert int(exif_orientation(read_bytes(png))) == 1
    assert int(exif_orientation(b"")) == 1
    assert int(exif_orientation(b"\xff\xd8")) == 1


SHORT_6 = (ORIENTATION_TAG, 3, 1, struct.pack("<HH", 6, 0))


@pytest.mark.parametrize(
    "tiff",
    [
        pytest.param(b"XX" + little_endian_tiff([SHORT_6])[2:], id="bad-byte-order"),
        pytest.param(b"II\x2b\x00" + little_endian_tiff([SHORT_6])[4:], id="bad-magic"),
        pytest.param(little_endian_tiff([SHORT_6], ifd_offset=0xFFFFFFF0), id="ifd-offset-too-big"),
        pytest.param(little_endian_tiff([SHORT_6])[:14], id="truncated-ifd"),
        pytest.param(little_endian_tiff([(ORIENTATION_TAG, 3, 1, struct.pack("<HH", 9, 0))]), id="value-9"),
        pytest.param(little_endian_tiff([(ORIENTATION_TAG, 3, 1, struct.pack("<HH", 0, 0))]), id="value-0"),
        pytest.param(little_endian_tiff([(ORIENTATION_TAG, 2, 2, b"6\0\0\0")]), id="ascii-type"),
        pytest.param(little_endian_tiff([(ORIENTATION_TAG, 3, 2, struct.pack("<HH", 6, 6))]), id="two-values"),
        pytest.param(little_endian_tiff([(0x010F, 2, 4, b"Abc\0")]), id="no-orientation-tag"),
        pytest.param(little_endian_tiff([]), id="empty-ifd"),
        pytest.param(b"", id="empty-tiff"),
    ],
)
def test_weird_exif_gives_one_and_never_raises(plain_jpeg, tiff):
    data = with_app1(read_bytes(plain_jpeg), tiff)
    assert int(exif_orientation(data)) == 1
    assert decode_image(data).shape.as_list() == [40, 24, 3]


def test_orientation_found_among_many_entries_and_long_type(plain_jpeg):
    filler = [(0x0100 + i, 3, 1, struct.pack("<HH", i, 0)) for i in range(18)]  # up to 0x0111
    data = with_app1(read_bytes(plain_jpeg), little_endian_tiff(filler + [SHORT_6]))
    assert int(exif_orientation(data)) == 6
    long_8 = (ORIENTATION_TAG, 4, 1, struct.pack("<I", 8))
    assert int(exif_orientation(with_app1(read_bytes(plain_jpeg), little_endian_tiff([long_8])))) == 8
    # An entry count larger than the bytes present only looks at the whole entries that are there.
    data = with_app1(read_bytes(plain_jpeg), little_endian_tiff([SHORT_6], count=0xFFFF))
    assert int(exif_orientation(data)) == 6


def test_apply_orientation_keeps_dtype_rank_and_ignores_unknown_values():
    image = tf.constant(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4))
    for k in range(1, 9):
        out = apply_orientation(image, tf.constant(k))
        assert out.dtype == tf.float32
        assert out.shape.as_list() == ([2, 3, 4] if k <= 4 else [3, 2, 4])
    for k in (0, 9, -1):
        np.testing.assert_array_equal(apply_orientation(image, k).numpy(), image.numpy())


# --- graph mode, tf.data, tf.map_fn, SavedModel -------------------------------------------------------


def test_tf_function_matches_eager(oriented_jpegs):
    graph_fn = tf.function(decode_image, input_signature=[tf.TensorSpec([], tf.string)])
    for path in oriented_jpegs.values():
        data = read_bytes(path)
        np.testing.assert_array_equal(graph_fn(tf.constant(data)).numpy(), decode_image(data).numpy())


def test_dataset_map(oriented_jpegs, tmp_path):
    png = tmp_path / "image.png"
    Image.fromarray(pattern()).save(png)
    paths = [str(oriented_jpegs[1]), str(oriented_jpegs[6]), str(png)]
    dataset = tf.data.Dataset.from_tensor_slices(paths).map(tf.io.read_file).map(decode_image)
    assert dataset.element_spec.shape.as_list() == [None, None, 3]
    images = list(dataset.as_numpy_iterator())
    assert [image.shape for image in images] == [(40, 24, 3), (24, 40, 3), (40, 24, 3)]
    assert_close(images[1], pil_upright(oriented_jpegs[6]))
    np.testing.assert_array_equal(images[2], pattern())


def test_map_fn_over_a_batch_of_bytes(oriented_jpegs):
    batch = tf.constant([read_bytes(oriented_jpegs[k]) for k in (1, 5, 8)])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def decode_batch(images):
        return tf.map_fn(
            lambda data: tf.image.resize(decode_image(data), [16, 16]),
            images,
            fn_output_signature=tf.TensorSpec([16, 16, 3], tf.float32),
        )

    out = decode_batch(batch).numpy()
    assert out.shape == (3, 16, 16, 3)
    for row, k in zip(out, (1, 5, 8)):
        expected = tf.image.resize(decode_image(read_bytes(oriented_jpegs[k])), [16, 16]).numpy()
        np.testing.assert_allclose(row, expected, atol=1e-4)


class _Decoder(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def __call__(self, image_bytes):
        return decode_image(image_bytes)


def test_saved_model_round_trip_matches_eager(oriented_jpegs, tmp_path):
    export = tmp_path / "decoder"
    tf.saved_model.save(_Decoder(), str(export))
    loaded = tf.saved_model.load(str(export))
    png = tmp_path / "image.png"
    Image.fromarray(pattern()).save(png)
    for path in (oriented_jpegs[3], oriented_jpegs[6], oriented_jpegs[7], png):
        data = read_bytes(path)
        np.testing.assert_array_equal(loaded(tf.constant(data)).numpy(), decode_image(data).numpy())


# --- read_image_file and its errors -------------------------------------------------------------------


def test_read_image_file_returns_numpy(oriented_jpegs):
    image = read_image_file(oriented_jpegs[6])
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, decode_image(read_bytes(oriented_jpegs[6])).numpy())


def test_read_image_file_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty file") as info:
        read_image_file(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    assert info.value.path == str(path)


def test_read_image_file_text_named_jpg(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageDecodeError, match="not a JPEG/PNG/GIF/BMP/WebP image") as info:
        read_image_file(str(path))
    assert str(path) in str(info.value)


def test_read_image_file_truncated_jpeg(tmp_path, plain_jpeg):
    path = tmp_path / "cut.jpg"
    path.write_bytes(read_bytes(plain_jpeg)[:200])
    with pytest.raises(ImageDecodeError, match="truncated or corrupt image data") as info:
        read_image_file(path)
    assert str(path) in str(info.value)


def test_read_image_file_missing(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(ImageDecodeError, match="no such file") as info:
        read_image_file(path)
    assert str(path) in str(info.value)
