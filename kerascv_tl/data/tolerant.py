"""A bad file met during training is skipped and named, instead of stopping the run inside TensorFlow.

The data check runs before training, but a file can change after it, or be broken in a way only the
TensorFlow decoder notices. `map_skipping_errors(ds, fn, path_of)` is `ds.map(fn)` (parallel, in order),
except that an element whose `fn` fails (unreadable file, undecodable bytes, a failed size assertion) is
left out and its file is printed on stderr: "kerascv-tl: skipped 1 file(s) ...: PATH".

How, with graph ops only and the parallel map left as it is: `ignore_errors` drops the failing elements;
each element carries its position and the paths of the last few elements up to it, so a scan after the
map sees the gap in the positions and prints the paths that fell into it. One extra element at the end
(flagged, never given to `fn`) closes a gap at the end of the data.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import tensorflow as tf

__all__ = ["map_skipping_errors"]

# Helpers without Python control flow skip AutoGraph's conversion: the dataset is rebuilt every epoch.
_plain = tf.autograph.experimental.do_not_convert
REMEMBERED = 16  # paths each element carries: a run of more failures than this is named in part
SKIP_MESSAGE = (
    "failed to load (unreadable, undecodable, or not the size its annotations say) and were left out; "
    "kerascv-tl check-data CONFIG says why"
)


def map_skipping_errors(
    ds: tf.data.Dataset, fn: Callable, path_of: Callable, num_parallel_calls: int = tf.data.AUTOTUNE
) -> tf.data.Dataset:
    """`ds.map(fn, num_parallel_calls, deterministic=True)` that leaves out, and names via `path_of(*element)`,
    the elements whose `fn` fails. `ds` must be finite; the order of what is kept is unchanged."""

    @_plain
    def data(*element):
        return False, element

    @_plain
    def closing(*element):
        return True, element

    flagged = ds.map(data).concatenate(ds.take(1).map(closing))

    @_plain
    def remember(recent, item):
        last, element = item
        recent = tf.concat([recent[1:], tf.reshape(tf.cast(path_of(*element), tf.string), [1])], axis=0)
        return recent, (recent, last, element)

    def apply(index, item):
        recent, last, element = item
        return index, recent, last, fn(*element)

    @_plain
    def close(index, item):
        recent, last, _ = item
        return index, recent, last, tf.nest.map_structure(_zeros, mapped.element_spec[3])

    @_plain
    def report(expected, item):
        index, recent, last, out = item
        missing = index - expected
        shown = tf.minimum(missing, REMEMBERED - 1)
        names = tf.strings.reduce_join(recent[REMEMBERED - 1 - shown : REMEMBERED - 1], separator=", ")
        unnamed = tf.where(missing > shown, tf.strings.format("{} earlier ones and ", missing - shown), "")
        message = tf.strings.join(
            [
                tf.strings.format("kerascv-tl: skipped {} file(s) that ", missing),
                SKIP_MESSAGE,
                ": ",
                unnamed,
                names,
                "\n",
            ]
        )
        # No tf.cond (it slowed the pipeline down): an empty string with end="" prints nothing.
        tf.print(tf.where(missing > 0, message, ""), end="", output_stream=sys.stderr)
        return index + 1, (tf.logical_not(last), out)

    numbered = flagged.scan(tf.fill([REMEMBERED], ""), remember).enumerate()
    mapped = numbered.filter(_not_closing).map(apply, num_parallel_calls=num_parallel_calls, deterministic=True)
    # The closing element comes from a second pass over the cheap, undecoded elements: a tf.cond around `fn`
    # in the parallel map made decoding markedly slower.
    ds = mapped.ignore_errors().concatenate(numbered.filter(_closing).map(close))
    ds = ds.scan(tf.constant(0, tf.int64), report).filter(_kept)
    return ds.map(_value)


@_plain
def _closing(index, item):
    return item[1]


@_plain
def _not_closing(index, item):
    return tf.logical_not(item[1])


@_plain
def _kept(keep, out):
    return keep


@_plain
def _value(keep, out):
    return out


def _zeros(spec: tf.TensorSpec) -> tf.Tensor:
    shape = [] if spec.shape.rank is None else [0 if size is None else size for size in spec.shape.as_list()]
    if spec.dtype == tf.string:
        return tf.fill(shape, "")
    return tf.zeros(shape, spec.dtype)
