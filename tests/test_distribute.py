import keras
import pytest

from kerascv_tl.config import load_config
from kerascv_tl.distribute import resolve_strategy, scale_for_replicas, synchronize_batch_norm


def test_auto_on_this_cpu_is_the_default_strategy_and_each_strategy_is_made_once():
    import tensorflow as tf

    assert resolve_strategy("auto") is tf.distribute.get_strategy()
    assert resolve_strategy("one_device") is resolve_strategy("one_device")
    with pytest.raises(ValueError, match="unknown strategy"):
        resolve_strategy("nccl")


@pytest.mark.parametrize(
    "mode, batch, lr, fine_tune_lr",
    [("none", 32, 1e-3, 1e-4), ("batch", 128, 1e-3, 1e-4), ("batch_and_lr", 128, 4e-3, 4e-4)],
)
def test_scaling_to_replicas(mode, batch, lr, fine_tune_lr):
    config = load_config(None, [f"train.scale_to_replicas={mode}", "train.batch_size=32"])
    scaled = scale_for_replicas(config, 4)
    assert scaled.train.batch_size == batch
    assert scaled.train.learning_rate == pytest.approx(lr)
    assert scaled.train.fine_tune_learning_rate == pytest.approx(fine_tune_lr)
    assert config.train.batch_size == 32  # the given config is left alone
    assert scale_for_replicas(config, 1).train.batch_size == 32


def test_synchronize_batch_norm_switches_every_batch_norm_layer_once():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 1)(inputs))
    inner = keras.Model(inputs, keras.layers.BatchNormalization()(x))
    outer = keras.Model(inputs, inner(inputs))
    assert synchronize_batch_norm(outer) == 2
    assert all(layer.synchronized for layer in inner.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert synchronize_batch_norm(outer) == 0
