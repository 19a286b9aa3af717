import json

import keras
import numpy as np

from kerascv_tl.training.resume import ResumableEarlyStopping, StepBackupAndRestore


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1)(keras.layers.Dropout(0.5)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    return model


def _fit(model, backup, steps, epochs=1):
    backup.set_model(model)
    backup.prepare_fit(0, 0, steps)
    x, y = np.ones((steps * 2, 4), np.float32), np.ones((steps * 2, 1), np.float32)
    model.fit(x, y, batch_size=2, epochs=epochs, callbacks=[backup], verbose=0)


def _dropout_state(model):
    return model.layers[1]._seed_generators[0].state.numpy().tolist()


def test_restore_returns_the_step_and_brings_back_weights_optimizer_and_dropout_stream(tmp_path):
    model = _model()
    empty = StepBackupAndRestore(tmp_path / "empty", save_freq=1)
    empty.set_model(model)
    assert empty.restore() == (0, 0)

    backup = StepBackupAndRestore(tmp_path / "b", save_freq=2)
    _fit(model, backup, steps=4)  # saves after the second step and at the epoch end
    saved = json.loads((tmp_path / "b" / "rng_state.json").read_text())
    assert (saved["epoch"], saved["batch"]) == (1, -1)  # the last save: epoch 0 done, nothing of epoch 1
    weights, state, iterations = model.get_weights(), _dropout_state(model), int(model.optimizer.iterations)

    fresh = _model()
    restorer = StepBackupAndRestore(tmp_path / "b", save_freq=2)
    restorer.set_model(fresh)
    assert restorer.restore() == (1, 0)
    for a, b in zip(fresh.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    assert _dropout_state(fresh) == state and int(fresh.optimizer.iterations) == iterations == 4


def test_a_kill_in_the_middle_of_a_save_falls_back_on_the_previous_backup(tmp_path):
    model = _model()
    backup = StepBackupAndRestore(tmp_path / "b", save_freq=1)
    _fit(model, backup, steps=3)
    # Saves: after steps 0 and 1 (not after the last step: the epoch-end save follows), then the epoch end.
    previous = json.loads((tmp_path / "b" / "rng_state.json.bkp").read_text())
    assert (previous["epoch"], previous["batch"]) == (0, 1)
    metadata, weights = tmp_path / "b" / "training_metadata.json", tmp_path / "b" / "latest.weights.h5"

    def restored():
        restorer = StepBackupAndRestore(tmp_path / "b", save_freq=1)
        restorer.set_model(_model())
        return restorer.restore()

    assert restored() == (1, 0)
    # Killed after Keras rewrote the metadata, before the random-stream file: the current backup disagrees.
    good = metadata.read_text()
    metadata.write_text(json.dumps({"epoch": 1, "batch": 5}))
    assert restored() == (0, 2)  # two steps of epoch 0 were done at the previous backup
    # Killed after the new weights, before the new metadata: the weights do not match their digest.
    metadata.write_text(good)
    weights.write_bytes(weights.read_bytes() + b"newer")
    assert restored() == (0, 2)
    # Falling back made the previous backup the current one; with both spoilt the phase starts again.
    metadata.write_text(json.dumps({"epoch": 1, "batch": 5}))
    (tmp_path / "b" / "training_metadata.json.bkp").unlink()
    assert restored() == (0, 0)


def test_early_stopping_patience_is_rebuilt_from_the_logged_epochs():
    model = _model()
    early = ResumableEarlyStopping("val_loss", patience=2, mode="min")
    early.set_model(model)
    assert early.resume([(0, 1.0), (1, 0.9), (2, 0.95)]) is False
    assert early.wait == 1 and early.best == 0.9 and early.best_epoch == 1
    assert early.resume([(0, 1.0), (1, 0.9), (2, 0.95), (3, 0.96)]) is True
    assert model.stop_training is False  # the caller decides; a resumed fit does not start stopped
