"""Exact resume: a run killed in the middle of an epoch continues as if it had never stopped.

Keras' `BackupAndRestore` saves every N steps, but on restart it replays the interrupted epoch from its
first batch and restarts the dropout random streams, so a resumed run trains on different batches than an
uninterrupted one. `StepBackupAndRestore` records how many steps of the epoch were done and the model's
seed-generator states; with training data that is a pure function of (seed, epoch) (`data.epochs`), the
recipe resumes at that very step. `ResumableEarlyStopping` rebuilds its patience count from the logged
epochs instead of starting from zero.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import keras
import numpy as np

from kerascv_tl.utils.io import atomic_path, atomic_write_json, sha256_file
from kerascv_tl.utils.seeds import seed_generators

log = logging.getLogger(__name__)


class StepBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that resumes at the step it saved, with the model's random streams restored.

    Saves every `save_freq` steps (or only at epoch ends with "epoch") and at every epoch end. The
    backup's metadata holds the epoch in progress and the last finished step in it (-1: none yet).
    Call `restore()` before fitting; it returns where to continue. The backup is kept across `fit` calls
    (the caller removes it when the phase is done).
    """

    def __init__(self, backup_dir: str | Path, save_freq="epoch"):
        super().__init__(str(backup_dir), save_freq=save_freq, double_checkpoint=True, delete_checkpoint=False)
        self.step_offset = 0
        self.steps_per_epoch = 1 << 62
        self._rng_path = Path(backup_dir) / "rng_state.json"
        # A weights file another callback (the best checkpoint) may rewrite at an epoch's end, before this one.
        self.same_state_file: Path | None = None
        self._same_state_stamp = None
        self._epoch_end = False

    @property
    def weights_file(self) -> Path:
        return Path(self._weights_path)

    def restore(self) -> tuple[int, int]:
        """Loads the last complete backup into the model; returns (epoch, steps of it already trained).

        A backup counts when its random-stream file (written last) names its metadata's step and its
        weights' digest; a kill in the middle of a save falls back on the previous backup.
        """
        current = (Path(self._weights_path), Path(self._training_metadata_path), self._rng_path)
        previous = tuple(Path(f"{path}.bkp") for path in current)
        for candidate in (current, previous):
            weights_path, metadata_path, rng_path = candidate
            try:
                position = json.loads(metadata_path.read_text())
                rng = json.loads(rng_path.read_text())
                if (rng["epoch"], rng["batch"]) != (position["epoch"], position["batch"]) or rng[
                    "weights_sha256"
                ] != sha256_file(weights_path):
                    continue
                if candidate is previous:  # as Keras does: the previous backup becomes the current one
                    for source, target in zip(previous, current):
                        shutil.copyfile(source, target)
                if self.model.optimizer is not None and not self.model.optimizer.built:
                    self.model.optimizer.build(self.model.trainable_variables)
                self.model.load_weights(str(current[0]))
            except (OSError, ValueError, KeyError):
                continue
            generators = seed_generators(self.model)
            if len(generators) == len(rng["states"]):
                for generator, state in zip(generators, rng["states"]):
                    generator.state.assign(np.asarray(state, generator.state.dtype))
            epoch, steps_done = int(position["epoch"]), int(position["batch"]) + 1
            log.info("resumed from %s: epoch %d, %d step(s) of it already trained", weights_path, epoch + 1, steps_done)
            return epoch, steps_done
        if current[0].exists() or previous[0].exists():
            log.warning("%s holds no complete backup; the phase starts again from its first epoch", self.backup_dir)
        return 0, 0

    def prepare_fit(self, epoch: int, steps_done: int, steps_per_epoch: int) -> None:
        """Before a fit that starts at step `steps_done` of `epoch` (its batches are numbered from 0)."""
        self.steps_per_epoch = steps_per_epoch
        self.step_offset = steps_done
        self._current_epoch = epoch
        self._last_batch_seen = steps_done - 1
        self._batches_seen_since_last_saving = 0

    def on_train_begin(self, logs=None):
        pass  # restored explicitly by `restore()`, once, before the first fit

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._same_state_stamp = _stamp(self.same_state_file)

    def on_train_batch_end(self, batch, logs=None):
        if batch + self.step_offset < self.steps_per_epoch - 1:  # the epoch-end backup follows the last step
            super().on_train_batch_end(batch + self.step_offset, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.step_offset = 0
        self._current_epoch = epoch + 1
        self._last_batch_seen = -1  # no step of the next epoch done yet
        self._epoch_end = True
        try:
            self._save_model()
        finally:
            self._epoch_end = False

    def _save_model(self):
        # As Keras' BackupAndRestore: the previous files go to ".bkp", then the weights, then the metadata;
        # the random-stream file comes last and names both (the weights by digest), so a kill anywhere in
        # between leaves either this backup or the previous one complete. Its previous copy is taken first,
        # while it still matches the files about to be copied to their ".bkp" names.
        if self._rng_path.exists():
            shutil.copyfile(self._rng_path, self._rng_path.with_suffix(".json.bkp"))
        Path(self.backup_dir).mkdir(parents=True, exist_ok=True)
        for path, previous in (
            (self._weights_path, self._prev_weights_path),
            (self._training_metadata_path, self._prev_training_metadata_path),
        ):
            if Path(path).exists():
                shutil.copyfile(path, previous)
        rewritten = self._epoch_end and _stamp(self.same_state_file) not in (None, self._same_state_stamp)
        if rewritten:
            # The best checkpoint was saved from this very state a moment ago: a file copy instead of a second
            # Keras save (a save walks every layer in Python; benchmarks/framework_overhead.py).
            with atomic_path(self._weights_path, suffix=".weights.h5") as tmp:
                shutil.copyfile(self.same_state_file, tmp)
        else:
            self.model.save_weights(filepath=self._weights_path, overwrite=True)
        Path(self._training_metadata_path).write_text(
            json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen})
        )
        states = [g.state.numpy().tolist() for g in seed_generators(self.model)]
        atomic_write_json(
            self._rng_path,
            {
                "epoch": self._current_epoch,
                "batch": self._last_batch_seen,
                "weights_sha256": sha256_file(Path(self._weights_path)),
                "states": states,
            },
        )


def _stamp(path: Path | None):
    """What changes when a file is rewritten (atomic writes replace the inode)."""
    try:
        stat = path.stat()
    except (AttributeError, OSError):
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose state is rebuilt from the epochs already logged (call `resume` before `fit`)."""

    def resume(self, logged: list[tuple[int, float]]) -> bool:
        """Replays (epoch, monitored value) pairs; returns True if they already called for a stop."""
        super().on_train_begin()
        for epoch, value in logged:
            super().on_epoch_end(epoch, {self.monitor: value})
        stop = bool(self.model.stop_training)
        self.model.stop_training = False
        return stop

    def on_train_begin(self, logs=None):
        pass  # state comes from `resume`
