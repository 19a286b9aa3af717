"""The serving graph's request guard, through a real SavedModel: decompression bombs of all five formats, empty,
non-image and truncated requests and oversized batches are refused before decoding, naming the image's index; valid
images are served as before; the in-graph header reading agrees with PIL; memory stays flat under a real bomb."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.data.decode import decode_image
from kerascv_tl.export.request_guard import declared_size
from kerascv_tl.export.serving import SERVING_DEFAULT, SERVING_IMAGES, load_serving, serving_archive, write_versioned

SIZE = 8  # the model's input side
MAX_BATCH = 6
LIMIT = 89_478_485  # serving_archive's default max_image_pixels (data.max_image_pixels' default)
HUGE = 50_000

read_header = tf.function(declared_size, input_signature=[tf.TensorSpec([], tf.string)])


def picture(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Random pixels; RGBA with a varying alpha (an opaque one would be written without it)."""
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    return Image.fromarray(array, "RGBA") if mode == "RGBA" else Image.fromarray(array[:, :, :3]).convert(mode)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def sof_offset(jpeg: bytes) -> int:
    """Where the frame header's marker starts, by walking the segments (PIL writes no stray bytes)."""
    pos = 2
    while not 0xC0 <= jpeg[pos + 1] <= 0xC2:
        pos += 2 + struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
    return pos


def with_size(data: bytes, fmt: str, width: int, height: int) -> bytes:
    """`data` with the width and height in its header replaced (the PNG's IHDR CRC recomputed)."""
    out = bytearray(data)
    if fmt == "PNG":
        out[16:24] = struct.pack(">II", width, height)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif fmt == "JPEG":
        at = sof_offset(data)
        out[at + 5 : at + 9] = struct.pack(">HH", height, width)
    elif fmt == "GIF":
        out[6:10] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        out[18:26] = struct.pack("<ii", width, -height)  # top-down: a negative height
    elif fmt == "WEBP":  # VP8X: 24-bit canvas width - 1, height - 1
        assert data[12:16] == b"VP8X"
        out[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(out)


def gif_with_frame(screen: tuple[int, int], frame: tuple[int, int]) -> bytes:
    """A GIF whose one image descriptor may be larger than its logical screen (TensorFlow sizes by the frame)."""
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0)
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0x80) + b"\x00" * 6  # local colour table: 2 colours
    return header + descriptor + b"\x02\x02\x4c\x01\x00\x3b"


def valid_images() -> dict[str, bytes]:
    """One small real image of each format (and WebP's three kinds), sizes and modes varied."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: decode_image turns it upright
    return {
        "jpeg": encode(picture(13, 9, 1), "JPEG", quality=90),
        "jpeg_portrait_exif": encode(picture(10, 16, 2), "JPEG", exif=exif.tobytes()),
        "jpeg_progressive": encode(picture(21, 11, 3), "JPEG", progressive=True),
        "png": encode(picture(9, 14, 4, "RGBA"), "PNG"),
        "gif": encode(picture(11, 7, 5, "P"), "GIF"),
        "bmp": encode(picture(6, 10, 6), "BMP"),
        "webp_lossy": encode(picture(12, 8, 7), "WEBP", quality=80),
        "webp_lossless": encode(picture(7, 12, 8), "WEBP", lossless=True),
        "webp_alpha": encode(picture(10, 10, 9, "RGBA"), "WEBP", quality=80),
    }


def bombs() -> dict[str, bytes]:
    """Headers declaring 50,000 x 50,000 pixels (WebP's VP8L at its largest, 16,384 x 16,384), bodies tiny."""
    found = {
        fmt: with_size(encode(picture(4, 4, mode="RGBA" if fmt == "WEBP" else "RGB"), fmt), fmt, HUGE, HUGE)
        for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP")
    }
    lossless = bytearray(encode(picture(4, 4), "WEBP", lossless=True))
    lossless[21:25] = struct.pack("<I", (16383 | 16383 << 14) | (lossless[24] >> 4 << 28))
    found["WEBP_VP8L"] = bytes(lossless)
    found["GIF_FRAME"] = gif_with_frame((16, 16), (HUGE, HUGE))
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(serving_default, serving_images, eager reference) of a tiny exported model: a conv net on 8 x 8 pixels."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(3, 3),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )

    def prepare(image):
        return tf.image.resize(tf.cast(image, tf.float32), (SIZE, SIZE))

    def finish(pixels):
        return {"scores": model(pixels, training=False)}

    spec = tf.TensorSpec([SIZE, SIZE, 3], tf.float32)
    archive = serving_archive(model, prepare, spec, finish, max_batch=MAX_BATCH)
    folder = write_versioned(archive, tmp_path_factory.mktemp("guard") / "m", None, {}, ["x"], ["scores"], {})
    loaded, _ = load_serving(folder)

    def reference(batch: list[bytes]) -> np.ndarray:  # the unguarded computation, eagerly
        return finish(tf.stack([prepare(decode_image(tf.constant(b))) for b in batch]))["scores"].numpy()

    return loaded.signatures[SERVING_DEFAULT], loaded.signatures[SERVING_IMAGES], reference, folder


def serve(signature, batch: list[bytes]) -> np.ndarray:
    return signature(image_bytes=tf.constant(batch, dtype=tf.string))["scores"].numpy()


def test_valid_images_of_every_format_are_served_as_before(served):
    serve_bytes, _, reference, folder = served
    batch = list(valid_images().values())[:MAX_BATCH]
    np.testing.assert_allclose(serve(serve_bytes, batch), reference(batch), atol=1e-6)
    rest = list(valid_images().values())[MAX_BATCH:]
    np.testing.assert_allclose(serve(serve_bytes, rest), reference(rest), atol=1e-6)
    card = json.loads((folder / "model_card.json").read_text())["export"]
    assert (card["max_image_pixels"], card["max_batch"]) == (LIMIT, MAX_BATCH)


@pytest.mark.parametrize("name", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "WEBP_VP8L", "GIF_FRAME"])
def test_decompression_bombs_are_refused_naming_index_size_and_limit(served, name):
    serve_bytes = served[0]
    bomb = bombs()[name]
    fmt = {"WEBP": "WebP"}.get(name.split("_")[0], name.split("_")[0])
    side = 16384 if name == "WEBP_VP8L" else HUGE
    batch = [valid_images()["jpeg"]] * 3 + [bomb]
    expected = (
        rf"image_bytes\[3\]: the {fmt} header declares {side} x {side} pixels, "
        rf"more than the limit {LIMIT} \(export.max_image_pixels\)"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        serve(serve_bytes, batch)


def test_empty_non_image_and_truncated_requests_are_refused_by_index(served):
    serve_bytes = served[0]
    good = valid_images()
    cases = {
        "an empty string, not an image": b"",
        r"not a JPEG, PNG, GIF, BMP or WebP image \(64 bytes\)": np.random.default_rng(0).bytes(64),
        r"a truncated PNG header: its 20 bytes end before the image size": good["png"][:20],
        "a truncated JPEG header": good["jpeg"][: sof_offset(good["jpeg"]) + 4],
        "a truncated GIF header": good["gif"][:8],
        "a truncated BMP header": good["bmp"][:20],
        "a truncated WebP header": good["webp_lossy"][:24],
        r"a PNG header without a readable image size \(its first chunk is not IHDR\)": (
            good["png"][:8] + png_chunk(b"tEXt", b"a\x00b") + good["png"][8:]
        ),
        "a JPEG header without a readable image size": b"\xff\xd8\xff\xda\x00\x02" + b"\x00" * 30,
    }
    for index, (reason, data) in enumerate(cases.items()):
        batch = [good["png"]] * (index % 3) + [data]
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"image_bytes\[{index % 3}\]: {reason}"):
            serve(serve_bytes, batch)


def test_batches_over_max_batch_are_refused_by_both_signatures(served):
    serve_bytes, serve_images, _, _ = served
    png = valid_images()["png"]
    assert serve(serve_bytes, [png] * MAX_BATCH).shape == (MAX_BATCH, 3)
    message = rf"a request of {MAX_BATCH + 1} images, more than the limit {MAX_BATCH} \(export.max_batch\)"
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"image_bytes: {message}"):
        serve(serve_bytes, [png] * (MAX_BATCH + 1))
    pixels = tf.zeros([MAX_BATCH + 1, 5, 7, 3], tf.uint8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"images: {message}"):
        serve_images(images=pixels)
    assert serve_images(images=pixels[:MAX_BATCH])["scores"].shape == (MAX_BATCH, 3)


def test_declared_size_equals_pils_for_real_files():
    exif = Image.Exif()
    exif[0x0112] = 6
    files = []
    for width, height in ((1, 1), (37, 23), (200, 9), (9, 200)):
        image = picture(width, height, width)
        files += [
            encode(image, "JPEG"),
            encode(image, "JPEG", progressive=True, quality=70),
            encode(image.convert("L"), "JPEG"),
            encode(image, "PNG"),
            encode(image.convert("P"), "PNG"),
            encode(image, "GIF"),
            encode(image, "BMP"),
            with_size(encode(image, "BMP"), "BMP", width, height),  # the same size, stored top-down
            encode(image, "WEBP"),
            encode(image, "WEBP", lossless=True),
            encode(picture(width, height, width, "RGBA"), "WEBP"),
        ]
    portrait = encode(picture(30, 48, 1), "JPEG", exif=exif.tobytes(), comment=b"\xff\xc0\x00\x11\x08\xc3\x50\xc3\x50")
    thumbnail = with_size(encode(picture(8, 8), "JPEG"), "JPEG", HUGE, HUGE)  # an APP1 payload with its own SOF
    app1 = b"\xff\xe1" + struct.pack(">H", len(thumbnail) + 8) + b"Exif\x00\x00" + thumbnail
    big = encode(picture(64, 40, 2), "JPEG")
    frames = [picture(20, 12, seed) for seed in range(3)]
    animated = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    files += [portrait, big[:2] + app1 + big[2:], animated]
    for data in files:
        kind, width, height, problem = (int(v) for v in read_header(tf.constant(data)))
        assert problem == 0 and kind > 0, data[:16]
        assert (width, height) == Image.open(io.BytesIO(data)).size, data[:16]
    # The APP1 "thumbnail" was skipped with its segment: the file is served as the 64 x 40 image it is.
    assert decode_image(tf.constant(big[:2] + app1 + big[2:])).shape == (40, 64, 3)


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import tensorflow as tf

    def peak_kib():  # this process's own peak RSS (ru_maxrss would start from the forking parent's)
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))

    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    serve(image_bytes=tf.constant([Path(sys.argv[2]).read_bytes()]))  # initialised on a valid image
    before = peak_kib()
    refused = 0
    for path in sorted(Path(sys.argv[3]).iterdir()):
        try:
            serve(image_bytes=tf.constant([path.read_bytes()]))
        except tf.errors.InvalidArgumentError as error:
            refused += "more than the limit" in error.message
    after = peak_kib()
    # The control: the same real bomb decoded without the guard does take its memory.
    tf.io.decode_image((Path(sys.argv[3]) / "REAL_PNG").read_bytes(), channels=3)
    control = peak_kib()
    print(json.dumps({"before_kib": before, "after_kib": after, "control_kib": control, "refused": refused}))
    """
)


def real_png_bomb(side: int) -> bytes:
    """A complete, valid black PNG of side x side RGB: ~0.3 MB that decodes to side * side * 3 bytes."""
    row = b"\x00" * (1 + 3 * side)
    deflate = zlib.compressobj(9)
    data = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def test_memory_stays_flat_under_bombs(served, tmp_path):
    """In a fresh process: every bomb refused, and peak memory grows far less than decoding would need (the real
    10,000 x 10,000 PNG alone decodes to 300 MB; the 50,000 x 50,000 headers declare 7.5 GB)."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("peak memory is read from /proc/self/status (Linux)")
    folder = served[3]
    bomb_dir = tmp_path / "bombs"
    bomb_dir.mkdir()
    every = {**bombs(), "REAL_PNG": real_png_bomb(10_000)}
    for name, data in every.items():
        (bomb_dir / name).write_bytes(data)
    (tmp_path / "valid.png").write_bytes(valid_images()["png"])
    command = [sys.executable, "-c", MEMORY_SCRIPT, str(folder), str(tmp_path / "valid.png"), str(bomb_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["refused"] == len(every)
    growth_mib = (measured["after_kib"] - measured["before_kib"]) / 1024
    assert growth_mib < 50, f"peak memory grew {growth_mib:.0f} MiB"
    # Unguarded, the real PNG bomb raises the peak by most of its 300 MB (less whatever the peak already held).
    assert (measured["control_kib"] - measured["after_kib"]) / 1024 > 150


def test_walks_too_long_to_check_cheaply_are_refused_as_unreadable():
    """1,100 empty APP0 segments before a JPEG's frame header; 9,000 one-byte sub-blocks in a GIF comment: refused
    (problem 4, unreadable) after a bounded walk, instead of walked to the end at any cost."""
    jpeg = encode(picture(8, 8), "JPEG")
    padded_jpeg = jpeg[:2] + b"\xff\xe0\x00\x02" * 1100 + jpeg[2:]
    gif = gif_with_frame((16, 16), (8, 8))
    padded_gif = gif[:13] + b"\x21\xfe" + b"\x01x" * 9000 + b"\x00" + gif[13:]
    for data in (padded_jpeg, padded_gif):
        assert int(read_header(tf.constant(data))[3]) == 4
    short_jpeg = jpeg[:2] + b"\xff\xe0\x00\x02" * 900 + jpeg[2:]  # under the limit: read through
    assert [int(v) for v in read_header(tf.constant(short_jpeg))] == [1, 8, 8, 0]
