"""The serving graph's request guard: every encoded image's header is read in the graph, and a request is refused
before any decoder runs when it could make the decoder allocate more than the export allows.

`declared_size` reads what the header of a scalar tf.string declares, as the decoder that `decode_image` picks
will read it (format found from the leading bytes exactly as TensorFlow's DecodeImage op does):

* JPEG: the markers are walked as libjpeg walks them (segment lengths skipped, fill bytes and stray bytes between
  segments passed over) up to the first SOFn frame header (SOF0..SOF15 except DHT, JPG and DAC), which holds
  the height and width; an EXIF thumbnail's own SOF inside an APP1 segment is skipped with its segment.
* PNG: the IHDR chunk, which must come first.
* GIF: the logical screen and every frame's image descriptor. TensorFlow's GIF decoder allocates its output at
  the largest frame's width x height (not the screen's) and giflib holds every frame at its own size, so the
  declared size is max(screen, largest frame) in each direction. The blocks are walked in-graph, a run of full
  255-byte sub-blocks passed in one step. The frames' total (an animation's frames together) is not limited.
* BMP: the 32-bit width and height at offsets 18 and 22 (BITMAPINFOHEADER and later; height negative for a
  top-down file), read as TensorFlow's BMP decoder reads them.
* WebP: the VP8X canvas of an extended file, else the VP8 (lossy) or VP8L (lossless) frame size.

`checked_image_bytes` turns that into a tf.debugging.Assert (an InvalidArgumentError for the client) that names the
image's index in the request: an empty string, bytes of no known format, a header cut short before its size, a
header whose size cannot be read, or a declared width x height above the limit (int64 arithmetic). A header whose
walk would be long (more than 1,024 JPEG markers before the frame header, more than 8,192 GIF blocks and short
sub-blocks) counts as unreadable: the guard's own cost stays bounded (under 0.1 s and 0.6 s). `checked_batch`
refuses a request of more images than the limit. Both return their input with the check as a control dependency,
so nothing downstream (no decoder) runs before it passes.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["FORMAT_NAMES", "checked_batch", "checked_image_bytes", "declared_size"]

# Format ids, in the order TensorFlow's DecodeImage op tries their signatures (they cannot overlap).
UNKNOWN, JPEG, PNG, GIF, BMP, WEBP = range(6)
FORMAT_NAMES = ("unknown", "JPEG", "PNG", "GIF", "BMP", "WebP")
_SIGNATURES = ((b"\xff\xd8\xff", 0), (b"\x89PNG\r\n\x1a\n", 0), (b"GIF8", 0), (b"BM", 0), (b"RIFF", 0))
# Problems found in a header; TOO_LARGE is decided against the limit afterwards.
OK, EMPTY, NOT_AN_IMAGE, TRUNCATED, UNREADABLE, TOO_LARGE = range(6)
_RUNNING = -1

_HEAD_BYTES = 32  # every fixed-offset size field lies in the first 30 bytes
_JPEG_WINDOW = 1024  # bytes searched for the next marker per step
_JPEG_MAX_STEPS = 1024  # segments (or windows of stray bytes) walked before the frame header; more is refused
_GIF_STRIDES = 1024  # full 255-byte sub-blocks passed per step (256 KiB of image data)
_GIF_MAX_STEPS = 8192  # blocks and short sub-blocks (~4 a frame) walked; more is refused: later frames go unchecked
_UNREADABLE_DETAIL = (
    "",
    f"no SOFn frame header before the scan data, the end of the image or the first {_JPEG_MAX_STEPS} markers",
    "its first chunk is not IHDR",
    f"more than {_GIF_MAX_STEPS} blocks and short sub-blocks",
    "",
    "its first chunk is not VP8, VP8L or VP8X",
)


def _read(image_bytes: tf.Tensor, n: tf.Tensor, start: tf.Tensor, length: int) -> tf.Tensor:
    """int32 [length]: the bytes at start.., zero-padded past the end (a read past the end never fails)."""
    start = tf.clip_by_value(tf.cast(start, tf.int32), 0, n)
    raw = tf.io.decode_raw(tf.strings.substr(image_bytes, start, tf.constant(length, tf.int32)), tf.uint8)
    return tf.concat([tf.cast(raw, tf.int32), tf.zeros([length], tf.int32)], axis=0)[:length]


def _uint(values: tf.Tensor, offset, size: int, little: bool) -> tf.Tensor:
    """int64: `size` bytes of `values` from `offset` as an unsigned integer."""
    total = tf.constant(0, tf.int64)
    order = range(size - 1, -1, -1) if little else range(size)
    for k in order:
        total = total * 256 + tf.cast(values[offset + k], tf.int64)
    return total


def _starts_with(head: tf.Tensor, offset: int, text: bytes) -> tf.Tensor:
    return tf.reduce_all(tf.equal(head[offset : offset + len(text)], tf.constant(list(text), tf.int32)))


def _result(width, height, problem) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    return tf.cast(width, tf.int64), tf.cast(height, tf.int64), tf.cast(problem, tf.int32)


def _needs(n: tf.Tensor, size: int, problem=OK) -> tf.Tensor:
    """TRUNCATED when fewer than `size` bytes are there, else `problem`."""
    return tf.where(n < size, TRUNCATED, tf.cast(problem, tf.int32))


def _png(head, n):
    problem = _needs(n, 24, tf.where(_starts_with(head, 12, b"IHDR"), OK, UNREADABLE))
    return _result(_uint(head, 16, 4, little=False), _uint(head, 20, 4, little=False), problem)


def _bmp(head, n):
    def int32(offset):
        value = _uint(head, offset, 4, little=True)
        return tf.where(value >= 2**31, value - 2**32, value)

    return _result(int32(18), tf.abs(int32(22)), _needs(n, 26))


def _webp(head, n):
    vp8, lossless, extended = (_starts_with(head, 12, tag) for tag in (b"VP8 ", b"VP8L", b"VP8X"))
    bits = _uint(head, 21, 4, little=True)  # VP8L: 14 bits width - 1, 14 bits height - 1
    width = tf.where(
        extended,
        _uint(head, 24, 3, little=True) + 1,
        tf.where(lossless, bits % 2**14 + 1, _uint(head, 26, 2, little=True) % 2**14),
    )
    height = tf.where(
        extended,
        _uint(head, 27, 3, little=True) + 1,
        tf.where(lossless, bits // 2**14 % 2**14 + 1, _uint(head, 28, 2, little=True) % 2**14),
    )
    known = vp8 | lossless | extended
    problem = _needs(n, 16, tf.where(known, _needs(n, tf.where(lossless, 25, 30)), UNREADABLE))
    return _result(width, height, problem)


def _jpeg(image_bytes, n):
    """The first SOFn frame header's width and height, found by walking the markers from the SOI as libjpeg does.

    Each step looks for the next real marker (FF followed by neither FF, 00 nor a parameterless RSTn/SOI/TEM) in
    a window from `pos`, then reads it: a frame header ends the walk, SOS or EOI before one is unreadable, any
    other marker's segment is skipped by its length.
    """
    sof = [m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)]
    parameterless = tf.constant([0x01, *range(0xD0, 0xD9)], tf.int32)

    def step(pos, state, width, height):
        window = _read(image_bytes, n, pos, _JPEG_WINDOW)
        follower = window[1:]
        marker_at = (
            tf.equal(window[:-1], 0xFF)
            & tf.not_equal(follower, 0xFF)
            & tf.not_equal(follower, 0)
            & tf.logical_not(tf.reduce_any(tf.equal(follower[:, None], parameterless[None, :]), axis=1))
            & (tf.range(1, _JPEG_WINDOW) < n - pos)
        )
        found = tf.reduce_any(marker_at)
        q = pos + tf.argmax(tf.cast(marker_at, tf.int32), output_type=tf.int32) + 1  # the marker byte
        segment = _read(image_bytes, n, q, 8)  # marker, length (2), precision, height (2), width (2)
        marker = segment[0]
        is_sof = tf.reduce_any(tf.equal(marker, sof))
        length = segment[1] * 256 + segment[2]
        ends_scan = tf.equal(marker, 0xD9) | tf.equal(marker, 0xDA)
        next_state = tf.where(
            ~found,
            tf.where(pos + _JPEG_WINDOW >= n, TRUNCATED, _RUNNING),
            tf.where(
                is_sof,
                tf.where(q + 8 <= n, OK, TRUNCATED),
                tf.where(
                    ends_scan, UNREADABLE, tf.where(q + 3 > n, TRUNCATED, tf.where(length < 2, UNREADABLE, _RUNNING))
                ),
            ),
        )
        next_pos = tf.where(found, q + 1 + length, pos + _JPEG_WINDOW - 1)
        done = found & is_sof
        width = tf.where(done, _uint(segment, 6, 2, little=False), width)
        height = tf.where(done, _uint(segment, 4, 2, little=False), height)
        return next_pos, tf.cast(next_state, tf.int32), width, height

    start = (
        tf.constant(2, tf.int32),
        tf.constant(_RUNNING, tf.int32),
        tf.constant(0, tf.int64),
        tf.constant(0, tf.int64),
    )
    _, state, width, height = tf.while_loop(
        lambda pos, state, w, h: tf.equal(state, _RUNNING), step, start, maximum_iterations=_JPEG_MAX_STEPS
    )
    return _result(width, height, tf.where(tf.equal(state, _RUNNING), UNREADABLE, state))


def _gif(image_bytes, head, n):
    """max(logical screen, largest frame) in each direction, walking the blocks after the global colour table.

    One state machine: at a block start, an extension (0x21) or image descriptor (0x2C: its width and height are
    taken) leads into a chain of sub-blocks, anything else ends the walk (giflib stops there too). In a chain, a
    run of full 255-byte sub-blocks (what encoders write) is passed in one step by looking at every 256th byte;
    a shorter sub-block takes a step of its own, the 0-length terminator leads to the next block.
    Long: one loop body whose two states share their reads; split, the hand-over between them would not read.
    """
    data = tf.io.decode_raw(image_bytes, tf.uint8)
    padded = tf.concat([data, tf.zeros([16], tf.uint8)], axis=0)
    strides = 256 * tf.range(_GIF_STRIDES)

    def byte(index):
        return tf.cast(tf.gather(padded, tf.clip_by_value(index, 0, n)), tf.int32)

    def colour_table(flags):
        return tf.where(tf.bitwise.bitwise_and(flags, 0x80) > 0, 3 * tf.bitwise.left_shift(2, flags % 8), 0)

    def step(pos, in_chain, width, height, state):
        # At a block start.
        kind = byte(pos)
        extension = tf.equal(kind, 0x21)
        image = tf.equal(kind, 0x2C) & (pos + 10 <= n)
        frame_w = tf.cast(byte(pos + 5) + 256 * byte(pos + 6), tf.int64)
        frame_h = tf.cast(byte(pos + 7) + 256 * byte(pos + 8), tf.int64)
        chain_start = tf.where(extension, pos + 2, pos + 11 + colour_table(byte(pos + 9)))  # 11: LZW code size
        new_frame = ~in_chain & image
        # In a chain: skip the run of full sub-blocks, then take the next sub-block.
        lengths = tf.cast(tf.gather(padded, tf.clip_by_value(pos + strides, 0, n)), tf.int32)
        other = tf.not_equal(lengths, 255) | (pos + strides >= n)
        q = pos + 256 * tf.argmax(tf.cast(other, tf.int32), output_type=tf.int32)
        length = byte(q)
        chain_pos = tf.where(tf.reduce_any(other), q + 1 + length, pos + 256 * _GIF_STRIDES)
        chain_ends = tf.reduce_any(other) & tf.equal(length, 0)
        finished = tf.where(in_chain, tf.reduce_any(other) & (q >= n), ~(extension | image))
        return (
            tf.where(in_chain, chain_pos, chain_start),
            tf.where(in_chain, ~chain_ends, True),
            tf.where(new_frame, tf.maximum(width, frame_w), width),
            tf.where(new_frame, tf.maximum(height, frame_h), height),
            tf.where(finished, OK, _RUNNING),
        )

    screen_w, screen_h = _uint(head, 6, 2, little=True), _uint(head, 8, 2, little=True)
    start = (13 + colour_table(head[10]), tf.constant(False), screen_w, screen_h, tf.constant(_RUNNING))
    _, _, width, height, state = tf.while_loop(
        lambda pos, in_chain, w, h, state: tf.equal(state, _RUNNING), step, start, maximum_iterations=_GIF_MAX_STEPS
    )
    return _result(width, height, _needs(n, 10, tf.where(tf.equal(state, _RUNNING), UNREADABLE, OK)))


def declared_size(image_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Scalar tf.string -> (format id int32, width int64, height int64, problem int32), read from the header only.

    Format ids index `FORMAT_NAMES` (0: none of JPEG, PNG, GIF, BMP, WebP); problem is OK (0), EMPTY, NOT_AN_IMAGE,
    TRUNCATED (the bytes end before the size) or UNREADABLE (no size where the format puts it). Width and height
    mean something only when the problem is OK. Graph ops only: works eagerly, in tf.function and tf.map_fn.
    """
    with tf.name_scope("declared_size"):
        image_bytes = tf.convert_to_tensor(image_bytes, dtype=tf.string)
        n = tf.strings.length(image_bytes)
        head = _read(image_bytes, n, 0, _HEAD_BYTES)
        matches = [_starts_with(head, offset, text) for text, offset in _SIGNATURES]
        matches[-1] = matches[-1] & _starts_with(head, 8, b"WEBP")
        found = tf.stack(matches)
        kind = tf.where(tf.reduce_any(found), tf.argmax(tf.cast(found, tf.int32), output_type=tf.int32) + 1, UNKNOWN)

        def unknown():
            return _result(0, 0, tf.where(tf.equal(n, 0), EMPTY, NOT_AN_IMAGE))

        branches = [
            unknown,
            lambda: _jpeg(image_bytes, n),
            lambda: _png(head, n),
            lambda: _gif(image_bytes, head, n),
            lambda: _bmp(head, n),
            lambda: _webp(head, n),
        ]
        width, height, problem = tf.switch_case(kind, branches)
        return kind, width, height, problem


def _refusal(index, kind, width, height, problem, n, max_image_pixels: int) -> tf.Tensor:
    """The message naming the image's index, what was found and (for a bomb) the limit."""
    name = tf.gather(tf.constant(FORMAT_NAMES), kind)
    text = tf.strings.as_string
    messages = tf.stack(
        [
            tf.constant(""),
            tf.constant("an empty string, not an image"),
            tf.strings.join(["not a JPEG, PNG, GIF, BMP or WebP image (", text(n), " bytes)"]),
            tf.strings.join(["a truncated ", name, " header: its ", text(n), " bytes end before the image size"]),
            tf.strings.join(
                ["a ", name, " header without a readable image size (", tf.gather(_UNREADABLE_DETAIL, kind), ")"]
            ),
            tf.strings.join(
                [
                    "the ",
                    name,
                    " header declares ",
                    text(width),
                    " x ",
                    text(height),
                    f" pixels, more than the limit {max_image_pixels} (export.max_image_pixels); not decoded",
                ]
            ),
        ]
    )
    return tf.strings.join(["image_bytes[", text(index), "]: ", tf.gather(messages, problem)])


def checked_image_bytes(image_bytes: tf.Tensor, index: tf.Tensor, max_image_pixels: int) -> tf.Tensor:
    """`image_bytes` (scalar tf.string), passed on only once its header is known to be safe to decode; else an
    InvalidArgumentError whose message starts "image_bytes[<index>]: " and says what was found."""
    with tf.name_scope("request_guard"):
        image_bytes = tf.convert_to_tensor(image_bytes, dtype=tf.string)
        kind, width, height, problem = declared_size(image_bytes)
        too_large = tf.equal(problem, OK) & (width * height > max_image_pixels)
        problem = tf.where(too_large, TOO_LARGE, problem)
        message = _refusal(index, kind, width, height, problem, tf.strings.length(image_bytes), max_image_pixels)
        check = tf.debugging.Assert(tf.equal(problem, OK), [message])
        with tf.control_dependencies([check]):
            return tf.identity(image_bytes)


def checked_batch(batch: tf.Tensor, max_batch: int, input_name: str) -> tf.Tensor:
    """`batch`, passed on only when it holds at most `max_batch` images; else an InvalidArgumentError naming the
    count and the limit."""
    with tf.name_scope("batch_guard"):
        count = tf.shape(batch)[0]
        message = tf.strings.join(
            [
                f"{input_name}: a request of ",
                tf.strings.as_string(count),
                f" images, more than the limit {max_batch} (export.max_batch)",
            ]
        )
        check = tf.debugging.Assert(count <= max_batch, [message])
        with tf.control_dependencies([check]):
            return tf.identity(batch)
