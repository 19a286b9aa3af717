"""The best checkpoint is replaced whole or not at all."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerascv_tl.training.checkpoint import AtomicModelCheckpoint


def _model() -> keras.Model:
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    return model


def test_a_write_that_dies_leaves_the_previous_best_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "best.weights.h5"
    model = _model()
    checkpoint = AtomicModelCheckpoint(str(path), monitor="loss", save_best_only=True, save_weights_only=True)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    saved = path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["best.weights.h5"]

    def dies_halfway(filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF half a file")
        raise OSError("killed while saving")

    monkeypatch.setattr(model, "save_weights", dies_halfway)
    model.layers[-1].kernel.assign(np.ones((2, 1), np.float32))
    with pytest.raises(OSError, match="killed while saving"):
        checkpoint.on_epoch_end(1, {"loss": 0.5})
    assert path.read_bytes() == saved and [p.name for p in tmp_path.iterdir()] == ["best.weights.h5"]
    monkeypatch.undo()
    checkpoint.on_epoch_end(2, {"loss": 0.25})
    fresh = _model()
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.layers[-1].kernel.numpy(), np.ones((2, 1)))
