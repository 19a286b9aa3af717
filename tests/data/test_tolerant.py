"""A file that fails in the tf.data pipeline is left out and named, and the rest keeps its order."""

from __future__ import annotations

import bad_files
import numpy as np
import tensorflow as tf

from kerascv_tl.data.records import ImageSource
from kerascv_tl.data.tolerant import REMEMBERED, map_skipping_errors


def _fails_on(bad: set[int]):
    def fn(x):
        with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(tf.not_equal(x, list(bad))), [x])]):
            return x * 10

    return fn


def _name(x):
    return tf.strings.format("item{}", x)


def test_nothing_failing_gives_exactly_the_map(capfd):
    ds = tf.data.Dataset.range(50)
    plain = list(ds.map(_fails_on({-1})).as_numpy_iterator())
    assert list(map_skipping_errors(ds, _fails_on({-1}), _name).as_numpy_iterator()) == plain
    assert "skipped" not in capfd.readouterr().err


def test_failures_anywhere_are_left_out_and_named(capfd):
    bad = {0, 7, 8, 49}  # first, a run of two, last
    out = list(map_skipping_errors(tf.data.Dataset.range(50), _fails_on(bad), _name).as_numpy_iterator())
    assert out == [10 * i for i in range(50) if i not in bad]
    err = capfd.readouterr().err
    assert "skipped 1 file(s) that failed to load" in err and ": item0\n" in err
    assert "skipped 2 file(s)" in err and ": item7, item8\n" in err and ": item49\n" in err


def test_a_long_run_of_failures_is_counted_and_its_last_paths_named(capfd):
    bad = set(range(10, 10 + REMEMBERED + 4))
    out = list(map_skipping_errors(tf.data.Dataset.range(40), _fails_on(bad), _name).as_numpy_iterator())
    assert len(out) == 40 - len(bad)
    err = capfd.readouterr().err
    assert f"skipped {len(bad)} file(s)" in err and "5 earlier ones and item15, item16" in err and "item29\n" in err


def test_an_image_broken_after_the_check_is_skipped_by_the_training_source(tmp_path, capfd):
    paths = [bad_files.png(tmp_path / f"{i}.png", bad_files.noise(8, 8, seed=i)) for i in range(4)]
    bad_files.truncated(paths[1], "PNG")  # e.g. overwritten by a half-finished copy after the data check
    paths[2].unlink()
    source = ImageSource(["a", "b"], np.array([0, 1, 0, 1], np.int32), [str(p) for p in paths])
    labels = [int(label) for _, label in source.decoded(shuffle=False)]
    assert labels == [0, 1]
    err = capfd.readouterr().err
    assert "skipped 2 file(s) that failed to load" in err and f"{paths[1]}, {paths[2]}" in err
