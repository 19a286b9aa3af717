"""One training phase: `model.fit` with checkpoints, exact resume, early stopping and logs.

A killed phase resumes at the step of its last backup; a finished phase is skipped and its weights reloaded.
The best checkpoint by `train.monitor` is kept across phases (RUN/checkpoints/best.weights.h5).
"""

from __future__ import annotations

import csv
import logging
import math
import random
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl import console
from kerascv_tl.data.epochs import EpochData
from kerascv_tl.run_folder import RunFolder
from kerascv_tl.training.checkpoint import AtomicModelCheckpoint
from kerascv_tl.training.distributed_loop import fit_function
from kerascv_tl.training.resume import ResumableEarlyStopping, StepBackupAndRestore
from kerascv_tl.utils.io import atomic_path, atomic_write_json

if TYPE_CHECKING:
    from kerascv_tl.config import TrainConfig

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow
    random.seed(seed)
    np.random.seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def monitor_mode(monitor: str) -> str:
    return "min" if "loss" in monitor or "error" in monitor else "max"


def logged_epochs(run: RunFolder, phase: str | None, monitor: str) -> list[tuple[int, float]]:
    """(epoch, monitored value) from the CSV logs, one per epoch (a resumed run may log an epoch twice:
    the later row wins); every phase when `phase` is None."""
    values: dict[tuple[str, int], float] = {}
    for name, path in run.history_files():
        if phase is not None and name != phase:
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get(monitor) not in (None, ""):
                    values[(name, int(row["epoch"]))] = float(row[monitor])
    return [(epoch, value) for (_, epoch), value in values.items()]


def best_so_far(run: RunFolder, monitor: str) -> float | None:
    """Best monitored value across every logged epoch of the run (CSVLogger files survive restarts)."""
    values = [value for _, value in logged_epochs(run, None, monitor)]
    if not values:
        return None
    return min(values) if monitor_mode(monitor) == "min" else max(values)


def fit_phase(
    run: RunFolder,
    phase: str,
    model: keras.Model,
    train_data: EpochData,
    val_data: tf.data.Dataset,
    epochs: int,
    train_config: TrainConfig,
    verbose: int | None = None,
    about: str = "",
) -> bool:
    """Fits one phase with checkpointing, exact resume, early stopping and logs.

    Returns False if the phase was already done. A killed phase resumes at the step of its last backup
    (`train.backup_every_steps`, and every epoch end): the interrupted epoch is finished first (a `fit` of
    its remaining steps), then the remaining epochs. `verbose` is `model.fit`'s (default:
    `kerascv_tl.console.keras_verbose()`). One line when it starts ("head: 5 epoch(s), " + `about`) and
    one for its best epoch at the end.

    Long: the resume loop and the callback order that makes a kill between two callbacks safe belong together.
    """
    done = run / f"phase_{phase}.done.json"
    phase_weights = run / f"phase_{phase}.weights.h5"
    if done.is_file() and phase_weights.is_file():
        load_weights(model, phase_weights)
        log.info("%s: already finished in %s; reloaded its weights", phase, run.root)
        return False
    log.info("%s: %d epoch(s)%s", phase, epochs, f", {about}" if about else "")
    if verbose is None:
        verbose = console.keras_verbose()
    monitor, mode = train_config.monitor, monitor_mode(train_config.monitor)
    run.best_weights.parent.mkdir(parents=True, exist_ok=True)
    backup = StepBackupAndRestore(run / "backup" / phase, save_freq=train_config.backup_every_steps or "epoch")
    backup.set_model(model)
    first_epoch, steps_done = backup.restore()
    # Order matters for a kill between two callbacks: the CSV row and the best checkpoint are written
    # before the backup, so a resumed run repeats that epoch instead of losing its log row.
    callbacks = [
        keras.callbacks.CSVLogger(str(run.history(phase)), append=True),
        AtomicModelCheckpoint(
            str(run.best_weights),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far(run, monitor),
        ),
        keras.callbacks.TensorBoard(str(run / "logs" / phase), write_graph=False, profile_batch=0),
    ]
    early = None
    if train_config.early_stopping_patience > 0:
        early = ResumableEarlyStopping(monitor, patience=train_config.early_stopping_patience, mode=mode)
        early.set_model(model)
        callbacks.append(early)
    callbacks.append(backup)
    backup.same_state_file = run.best_weights  # an improved epoch's backup copies that file instead of saving again
    fit = fit_function(model)
    val_data = with_known_length(val_data)
    started = time.time()
    while first_epoch < epochs:
        logged = [(e, v) for e, v in logged_epochs(run, phase, monitor) if e < first_epoch]
        if early is not None and early.resume(sorted(logged)):
            break
        # The first fit finishes an interrupted epoch (only its remaining steps), the second runs the rest.
        last_epoch = first_epoch + 1 if steps_done else epochs
        backup.prepare_fit(first_epoch, steps_done, train_data.steps)
        model.stop_training = False
        fit(
            train_data.stream(first_epoch, last_epoch, skip_steps=steps_done),
            validation_data=val_data,
            steps_per_epoch=train_data.steps - steps_done,
            initial_epoch=first_epoch,
            epochs=last_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # each epoch's data comes shuffled by (seed, epoch); Keras cannot shuffle a dataset
        )
        if model.stop_training:
            break
        first_epoch, steps_done = last_epoch, 0
    if backup.weights_file.is_file():  # the last epoch end's (or the restored) state: the model's weights now
        with atomic_path(phase_weights, suffix=".weights.h5") as tmp:
            shutil.copyfile(backup.weights_file, tmp)
    else:
        save_weights(model, phase_weights)
    # Seconds of the invocation that finished the phase (an interrupted phase's earlier part is not counted).
    atomic_write_json(done, {"phase": phase, "epochs": epochs, "seconds": round(time.time() - started, 1)})
    shutil.rmtree(run / "backup" / phase, ignore_errors=True)
    line = best_epoch_line(run, phase, monitor)
    if line:
        log.info("%s", line)
    return True


def best_epoch_line(run: RunFolder, phase: str, monitor: str) -> str | None:
    """The phase's best epoch and value ("head: best epoch 3 of 5, val_loss 0.4123"), and whether an earlier phase
    did better (the run keeps the best across phases); None before any epoch logged `monitor`."""
    logged = sorted(logged_epochs(run, phase, monitor))
    if not logged:
        return None
    pick = min if monitor_mode(monitor) == "min" else max
    epoch, value = pick(logged, key=lambda item: item[1])
    line = f"{phase}: best epoch {epoch + 1} of {logged[-1][0] + 1}, {monitor} {value:.4f}"
    overall = best_so_far(run, monitor)
    if overall is not None and overall != value and pick(overall, value) == overall:
        line += f" (an earlier phase reached {overall:.4f}: the run keeps that checkpoint)"
    return line


def with_known_length(data: tf.data.Dataset) -> tf.data.Dataset:
    """`data` with its number of batches declared, counted once where tf.data cannot tell it.

    The image pipelines leave out files that fail to decode (data/tolerant.py), so their length is known only
    once read; Keras 3.15 then warns "Your input ran out of data; interrupting training" at the end of every
    fit's first validation pass (keras-team/keras#23360). Validation data is cached (`Task.validation_data`),
    so counting fills the cache that first pass would have filled, and the later passes read it.
    """
    if data.cardinality() >= 0:
        return data
    batches = int(data.reduce(np.int64(0), lambda count, _: count + 1))
    return data.apply(tf.data.experimental.assert_cardinality(batches))


def save_weights(model: keras.Model, path: Path) -> None:
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)


def load_weights(model: keras.Model, path: Path) -> None:
    """Loads model weights; optimizer state saved by another phase's optimizer is deliberately ignored."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def restore_best(run: RunFolder, model: keras.Model) -> bool:
    """Loads the best checkpoint if one was written (a run with no validation improvement keeps its weights)."""
    if run.best_weights.is_file():
        load_weights(model, run.best_weights)
        return True
    return False


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(num_examples / batch_size))
