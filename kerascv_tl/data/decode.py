"""The one image decoder shared by the tf.data training pipeline and the exported serving graph.

Training and serving both call `decode_image`, so the pixels a model is trained on and the pixels it
is served cannot drift apart. It is built from TensorFlow graph ops only (no `tf.py_function`, NumPy or
PIL), so it works eagerly, inside `tf.function`, `tf.data.Dataset.map` and `tf.map_fn`, and survives
`tf.saved_model.save` / `tf.saved_model.load`.

What it does, for a scalar `tf.string` of encoded image bytes:

* JPEG is decoded with libjpeg's accurate integer DCT, which gives the same pixels as PIL, and then
  turned upright according to its EXIF orientation tag (phones store photos sideways and tag them);
  the tag is parsed in-graph by `exif_orientation` and applied by `apply_orientation` exactly as
  `PIL.ImageOps.exif_transpose` does.
* WebP (found by its `RIFF....WEBP` signature) is decoded in its own branch: TensorFlow 2.21's decoder gives
  a still WebP's own channels (RGB, or RGBA with alpha; `channels=3` fails on RGBA), so alpha is sliced off
  there. An animated WebP is refused with an InvalidArgumentError before any decoder sees it: TensorFlow
  decodes animations only as RGBA, and one without the alpha flag in its VP8X header comes back with wrong
  pixels or corrupts the heap (measured with TF 2.21 and animations written by PIL).
* PNG, GIF and BMP (and any other format `tf.io.decode_image` knows) go through `tf.io.decode_image`:
  greyscale, greyscale+alpha, RGBA and palette images become RGB (alpha is dropped, as PIL's
  `convert("RGB")` does), and an animated GIF gives its first frame.
* The result is always `uint8` with static shape `[None, None, 3]`.

The WebP branch calls `tf.io.decode_image` too, not `tf.io.decode_webp`: the same DecodeImage op (whose
kernel knows WebP) keeps the serving graph's op set unchanged, so an export still loads in a TF Serving
build that predates the DecodeWebP op; there only WebP requests fail.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from kerascv_tl.data.errors import ImageDecodeError

__all__ = ["apply_orientation", "decode_image", "exif_orientation", "is_animated_webp", "is_webp", "read_image_file"]

# The APP1 Exif segment is looked for in this many leading bytes. An APP segment holds at most
# 64 KiB and the Exif one normally follows SOI or the JFIF APP0 directly.
_EXIF_SCAN_BYTES = 64 * 1024
# FF E1 <2-byte segment length> "Exif" 00 00; None matches any byte.
_APP1_EXIF_PATTERN = (0xFF, 0xE1, None, None, 0x45, 0x78, 0x69, 0x66, 0x00, 0x00)
_TIFF_OFFSET_IN_PATTERN = len(_APP1_EXIF_PATTERN)
_ORIENTATION_TAG = 0x0112
_TIFF_SHORT = 3
_TIFF_LONG = 4
_IFD_ENTRY_BYTES = 12

# Leading bytes of the formats tf.io.decode_image knows; only used to word error messages.
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF87a", b"GIF89a", b"BM", b"RIFF")
# WebP: "RIFF" <4-byte size> "WEBP" <first chunk's FourCC>; an extended file's first chunk is VP8X, whose flags
# byte (the 21st of the file) has the animation bit 0x02.
_WEBP_HEADER_BYTES = 21
_WEBP_ANIMATION_FLAG = 0x02
ANIMATED_WEBP_MESSAGE = (
    "an animated WebP: TensorFlow's WebP decoder mis-reads animations, so it is not decoded; save the frame "
    "you want as a still image (PNG or WebP)"
)


def exif_orientation(image_bytes: tf.Tensor) -> tf.Tensor:
    """Scalar tf.string -> int32 scalar EXIF orientation 1..8 (1 when absent, not a JPEG, or unparsable).

    Looks for the APP1 "Exif\\0\\0" segment in the first 64 KiB, reads the TIFF byte order ("II" little
    endian, "MM" big endian), the IFD0 offset and entry count, and finds tag 0x0112 among the 12-byte
    entries with vectorised gathers. Every read is bounds-checked: a short, truncated or nonsensical
    EXIF block yields 1 and never raises.
    Long: one graph of dependent byte reads, each next to its bounds check; split, they would not read.
    """
    with tf.name_scope("exif_orientation"):
        image_bytes = tf.convert_to_tensor(image_bytes, dtype=tf.string)
        head = tf.strings.substr(image_bytes, 0, _EXIF_SCAN_BYTES)
        data = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)
        n = tf.size(data, out_type=tf.int64)
        # Index n of `padded` is a 0 sentinel: every out-of-range read returns 0 instead of failing.
        padded = tf.concat([data, tf.zeros([1], tf.int64)], axis=0)

        def byte(index: tf.Tensor) -> tf.Tensor:
            index = tf.cast(index, tf.int64)
            in_range = (index >= 0) & (index < n)
            return tf.gather(padded, tf.where(in_range, index, n))

        def in_bounds(start: tf.Tensor, length: int) -> tf.Tensor:
            return (start >= 0) & (start + length <= n)

        is_jpeg = tf.equal(byte(0), 0xFF) & tf.equal(byte(1), 0xD8)

        # First offset where FF E1 ?? ?? E x i f 00 00 starts: one vectorised comparison per pattern byte.
        windows = tf.maximum(n - len(_APP1_EXIF_PATTERN) + 1, 0)
        match = tf.ones([windows], tf.bool)
        for k, value in enumerate(_APP1_EXIF_PATTERN):
            if value is not None:
                match &= tf.equal(data[k : k + windows], value)
        no_match = tf.int64.max
        start = tf.reduce_min(tf.where(match, tf.range(windows, dtype=tf.int64), no_match))
        found = is_jpeg & (start < n)
        tiff = tf.where(found, start + _TIFF_OFFSET_IN_PATTERN, 0)

        # TIFF header: byte order, the magic number 42, the offset of IFD0 from the header's start.
        first, second = byte(tiff), byte(tiff + 1)
        little = tf.equal(first, 0x49) & tf.equal(second, 0x49)  # "II"
        big = tf.equal(first, 0x4D) & tf.equal(second, 0x4D)  # "MM"

        def u16(index: tf.Tensor) -> tf.Tensor:
            lo_first = byte(index) + byte(index + 1) * 256
            hi_first = byte(index) * 256 + byte(index + 1)
            return tf.where(little, lo_first, hi_first)

        def u32(index: tf.Tensor) -> tf.Tensor:
            lo_first = u16(index) + u16(index + 2) * 65536
            hi_first = u16(index) * 65536 + u16(index + 2)
            return tf.where(little, lo_first, hi_first)

        header_ok = found & (little | big) & in_bounds(tiff, 8) & tf.equal(u16(tiff + 2), 42)
        ifd = tiff + u32(tiff + 4)
        ifd_ok = header_ok & in_bounds(ifd, 2)

        # IFD0 entries: tag u16, type u16, count u32, value/offset 4 bytes. Only whole entries that lie
        # inside the scanned bytes are looked at.
        whole_entries = tf.maximum((n - ifd - 2) // _IFD_ENTRY_BYTES, 0)
        entry_count = tf.where(ifd_ok, tf.minimum(u16(ifd), whole_entries), 0)
        entries = ifd + 2 + _IFD_ENTRY_BYTES * tf.range(entry_count, dtype=tf.int64)
        is_orientation = tf.equal(u16(entries), _ORIENTATION_TAG)
        entry = tf.reduce_min(tf.where(is_orientation, entries, no_match))
        entry_ok = ifd_ok & tf.reduce_any(is_orientation)
        entry = tf.where(entry_ok, entry, 0)

        value_type = u16(entry + 2)
        single = tf.equal(u32(entry + 4), 1)
        # A SHORT value sits left-justified in the 4-byte field in either byte order.
        value = tf.where(tf.equal(value_type, _TIFF_LONG), u32(entry + 8), u16(entry + 8))
        type_ok = tf.equal(value_type, _TIFF_SHORT) | tf.equal(value_type, _TIFF_LONG)
        valid = entry_ok & single & type_ok & (value >= 1) & (value <= 8)
        return tf.cast(tf.where(valid, value, 1), tf.int32)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Rotate/flip an [H, W, C] image so it displays upright, as PIL.ImageOps.exif_transpose does.

    1 none, 2 flip left-right, 3 rotate 180, 4 flip up-down, 5 transpose, 6 rotate 90 clockwise,
    7 transverse, 8 rotate 90 counter-clockwise; any other value leaves the image unchanged. The
    result keeps rank 3 and the dtype (H and W swap for 5..8).
    """
    with tf.name_scope("apply_orientation"):
        image = tf.convert_to_tensor(image)
        orientation = tf.cast(tf.convert_to_tensor(orientation), tf.int32)
        index = tf.where((orientation >= 1) & (orientation <= 8), orientation - 1, 0)
        branches = [
            lambda: tf.identity(image),  # 1
            lambda: tf.image.flip_left_right(image),  # 2
            lambda: tf.image.rot90(image, k=2),  # 3
            lambda: tf.image.flip_up_down(image),  # 4
            lambda: tf.image.transpose(image),  # 5: mirror along the main diagonal
            lambda: tf.image.rot90(image, k=3),  # 6: rot90 turns counter-clockwise, so 3 turns = 90 cw
            lambda: tf.image.rot90(tf.image.transpose(image), k=2),  # 7: mirror along the anti-diagonal
            lambda: tf.image.rot90(image, k=1),  # 8
        ]
        oriented = tf.switch_case(index, branches)
        channels = image.shape[-1] if image.shape.rank == 3 else None
        return tf.ensure_shape(oriented, [None, None, channels])


def _webp_header(image_bytes: tf.Tensor) -> tf.Tensor:
    """The first 21 bytes as int32 [21], zero-padded: short input reads as zeros instead of failing."""
    head = tf.io.decode_raw(tf.strings.substr(image_bytes, 0, _WEBP_HEADER_BYTES), tf.uint8)
    head = tf.concat([tf.cast(head, tf.int32), tf.zeros([_WEBP_HEADER_BYTES], tf.int32)], axis=0)
    return head[:_WEBP_HEADER_BYTES]


def _matches(head: tf.Tensor, offset: int, text: bytes) -> tf.Tensor:
    return tf.reduce_all(tf.equal(head[offset : offset + len(text)], tf.constant(list(text), tf.int32)))


def is_webp(image_bytes: tf.Tensor) -> tf.Tensor:
    """Scalar tf.string -> bool scalar: the bytes start with a WebP signature ("RIFF" ???? "WEBP")."""
    head = _webp_header(tf.convert_to_tensor(image_bytes, dtype=tf.string))
    return _matches(head, 0, b"RIFF") & _matches(head, 8, b"WEBP")


def is_animated_webp(image_bytes: tf.Tensor) -> tf.Tensor:
    """Scalar tf.string -> bool scalar: a WebP whose VP8X header sets the animation flag."""
    head = _webp_header(tf.convert_to_tensor(image_bytes, dtype=tf.string))
    animated = tf.not_equal(tf.bitwise.bitwise_and(head[20], _WEBP_ANIMATION_FLAG), 0)
    return is_webp(image_bytes) & _matches(head, 12, b"VP8X") & animated


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """Scalar tf.string of encoded JPEG/PNG/GIF/BMP/WebP -> uint8 [H, W, 3] RGB, static shape [None, None, 3].

    In a graph (`Dataset.map`, `tf.function`, a serving signature) this calls one function traced once per
    process: tracing the EXIF parser and the format branches anew for every pipeline took about half a second
    each time. Eagerly it runs the ops directly, so a decoding error carries the decoder's own message.
    """
    if tf.executing_eagerly():
        return _decode_image(image_bytes)
    return _traced_decode_image(image_bytes)


def _decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    with tf.name_scope("decode_image"):
        image_bytes = tf.convert_to_tensor(image_bytes, dtype=tf.string)

        def decode_jpeg() -> tf.Tensor:
            # INTEGER_ACCURATE is libjpeg's ISLOW DCT, PIL's default: same pixels as PIL.
            image = tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE")
            return apply_orientation(image, exif_orientation(image_bytes))

        def decode_webp() -> tf.Tensor:
            # The assertion runs before the decoder (control dependency): an animation never reaches it.
            still = tf.debugging.Assert(tf.logical_not(is_animated_webp(image_bytes)), [ANIMATED_WEBP_MESSAGE])
            with tf.control_dependencies([still]):
                image = tf.io.decode_image(image_bytes, channels=0, dtype=tf.uint8, expand_animations=False)
            return image[:, :, :3]

        def decode_other() -> tf.Tensor:
            return tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)

        image = tf.cond(
            tf.io.is_jpeg(image_bytes),
            decode_jpeg,
            lambda: tf.cond(is_webp(image_bytes), decode_webp, decode_other),
        )
        return tf.ensure_shape(image, [None, None, 3])


_traced_decode_image = tf.function(_decode_image, input_signature=[tf.TensorSpec([], tf.string)], autograph=False)


def decode_file_of_size(path: tf.Tensor, expected_size: tf.Tensor, size_origin: str) -> tf.Tensor:
    """The image file at `path`, decoded (`decode_image`), that fails naming the file when its (H, W) differs
    from `expected_size` ("differs from <size_origin> (H, W)"): a file changed since its annotations were read."""
    image = decode_image(tf.io.read_file(path))
    same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], expected_size))
    message = ["decoded image size (H, W)", tf.shape(image)[:2], f"differs from {size_origin} (H, W)", expected_size]
    check = tf.debugging.Assert(same_size, [*message, "for", path])
    with tf.control_dependencies([check]):
        return tf.identity(image)


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """Convenience for Python callers: reads the file with tf.io.read_file and decode_image; on failure raises
    kerascv_tl.data.errors.ImageDecodeError whose message names the file and the problem (e.g. 'empty file',
    'not a JPEG/PNG/GIF/BMP/WebP image', 'truncated or corrupt image data', an animated WebP, or a header
    declaring more than data.max_image_pixels' default, refused before decoding)."""
    name = os.fspath(path)
    try:
        contents = tf.io.read_file(name)
    except tf.errors.NotFoundError:
        raise ImageDecodeError(f"{name}: no such file", path=name) from None
    except tf.errors.OpError as error:
        raise ImageDecodeError(f"{name}: cannot read file ({_first_line(error)})", path=name) from None
    raw = contents.numpy()
    if not raw:
        raise ImageDecodeError(f"{name}: empty file", path=name)
    from kerascv_tl.data.image_check import bomb_problem  # PIL, for Python callers only

    bomb = bomb_problem(name)
    if bomb is not None:
        raise ImageDecodeError(f"{name}: {bomb}", path=name)
    try:
        image = decode_image(contents)
    except tf.errors.OpError as error:
        # decode_image decides what it can decode; the signature check only words the message.
        if not raw.startswith(_IMAGE_SIGNATURES):
            problem = "not a JPEG/PNG/GIF/BMP/WebP image"
        elif ANIMATED_WEBP_MESSAGE in (error.message or ""):
            raise ImageDecodeError(f"{name}: {ANIMATED_WEBP_MESSAGE}", path=name) from None
        else:
            problem = "truncated or corrupt image data"
        raise ImageDecodeError(f"{name}: {problem} ({_first_line(error)})", path=name) from None
    return image.numpy()


def _first_line(error: tf.errors.OpError) -> str:
    message = (error.message or type(error).__name__).strip()
    return message.splitlines()[0] if message else type(error).__name__
