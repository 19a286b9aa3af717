"""make_optimizer honours train.optimizer and train.weight_decay for every task; clipping is global-batch."""

import keras
import pytest

from kerascv_tl.config import load_config
from kerascv_tl.training.optimizers import GlobalClipAdam, GlobalClipAdamW, GlobalClipSGD, make_optimizer, warmup_cosine


@pytest.mark.parametrize(
    "name, plain, clipped",
    [
        ("adam", keras.optimizers.Adam, GlobalClipAdam),
        ("adamw", keras.optimizers.AdamW, GlobalClipAdamW),
        ("sgd", keras.optimizers.SGD, GlobalClipSGD),
    ],
)
def test_optimizer_weight_decay_and_clipping(name, plain, clipped):
    train = load_config(None, [f"train.optimizer={name}", "train.weight_decay=0.01"]).train
    optimizer = make_optimizer(train, 1e-3)
    assert type(optimizer) is plain
    assert optimizer.weight_decay == pytest.approx(0.01)
    assert optimizer.global_clipnorm is None
    with_clip = make_optimizer(train, 1e-3, global_clipnorm=10.0)
    assert type(with_clip) is clipped and isinstance(with_clip, plain)
    assert with_clip.global_clipnorm == 10.0 and with_clip.weight_decay == pytest.approx(0.01)


def test_no_weight_decay_by_default_except_adamw():
    assert make_optimizer(load_config(None).train, 1e-3).weight_decay is None
    adamw = make_optimizer(load_config(None, ["train.optimizer=adamw"]).train, 1e-3)
    assert adamw.weight_decay == pytest.approx(1e-4)


def test_sgd_uses_nesterov_momentum():
    sgd = make_optimizer(load_config(None, ["train.optimizer=sgd"]).train, 0.1)
    assert sgd.nesterov and sgd.momentum == pytest.approx(0.9)


def test_clipped_optimizers_round_trip_through_keras_serialisation():
    optimizer = GlobalClipSGD(0.1, global_clipnorm=5.0, momentum=0.9)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(again) is GlobalClipSGD and again.global_clipnorm == 5.0


def test_warmup_then_cosine_reaches_the_peak_and_decays_to_zero():
    schedule = warmup_cosine(1e-3, epochs=4, warmup_epochs=1, steps=10)
    assert float(schedule(0)) == pytest.approx(1e-5)
    assert float(schedule(10)) == pytest.approx(1e-3, rel=1e-4)
    assert float(schedule(40)) == pytest.approx(0.0, abs=1e-9)
