"""Epoch streams keep exactly `steps` batches per epoch, even when files were left out of one."""

from __future__ import annotations

import tensorflow as tf

from kerascv_tl.data.epochs import EpochData


def test_a_short_epoch_is_topped_up_from_its_own_start():
    full = EpochData(lambda epoch: tf.data.Dataset.range(epoch * 10, epoch * 10 + 6).batch(2), steps=3)
    assert [b.tolist() for b in full.stream(0, 2).as_numpy_iterator()] == [
        [0, 1],
        [2, 3],
        [4, 5],
        [10, 11],
        [12, 13],
        [14, 15],
    ]
    # Epoch 0 lost two files (one batch fewer): epoch 1 still starts at the fourth step.
    short = EpochData(
        lambda epoch: tf.data.Dataset.range(epoch * 10, epoch * 10 + (4 if epoch == 0 else 6)).batch(2), steps=3
    )
    assert [b.tolist() for b in short.stream(0, 2).as_numpy_iterator()] == [
        [0, 1],
        [2, 3],
        [0, 1],
        [10, 11],
        [12, 13],
        [14, 15],
    ]
    assert [b.tolist() for b in short.stream(0, 2, skip_steps=2).as_numpy_iterator()][:2] == [[0, 1], [10, 11]]
