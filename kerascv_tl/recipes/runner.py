"""The run folder and the `model.fit` plumbing every recipe shares.

A run folder is the unit of work. Re-running the same command resumes it: finished phases are
skipped (their weights reloaded), an interrupted phase continues from Keras' BackupAndRestore state.

    RUN/config.yaml            resolved config          RUN/history_<phase>.csv   CSVLogger per phase
    RUN/class_names.json       label order              RUN/logs/<phase>/         TensorBoard
    RUN/checkpoints/best.weights.h5   best by monitor   RUN/backup/<phase>/       BackupAndRestore
    RUN/phase_<phase>.done.json + .weights.h5           RUN/model.keras           final (best) model
    RUN/metrics.json, confusion_matrix.*, *.png, model_card.json                  evaluation
    RUN/data_check.json        what the data check found and left out
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.data.epochs import EpochData
from kerascv_tl.recipes.checkpoint import AtomicModelCheckpoint
from kerascv_tl.recipes.distributed_loop import fit_function
from kerascv_tl.recipes.resume import ResumableEarlyStopping, StepBackupAndRestore
from kerascv_tl.utils.io import atomic_path, atomic_write_json, atomic_write_text
from kerascv_tl.utils.model_files import load_keras_model

log = logging.getLogger(__name__)


class RunExistsError(RuntimeError):
    """The run folder holds a finished run, or an unfinished one with a different config."""


class RunFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @property
    def best_weights(self) -> Path:
        return self.root / "checkpoints" / "best.weights.h5"

    @property
    def model_path(self) -> Path:
        return self.root / "model.keras"

    def history(self, phase: str) -> Path:
        return self.root / f"history_{phase}.csv"

    def is_finished(self) -> bool:
        return all((self.root / name).is_file() for name in ("model.keras", "metrics.json", "model_card.json"))

    def prepare(self, config, overwrite: bool = False) -> None:
        """Creates the folder, refusing to clobber a finished run or resume one with another config."""
        text = config.to_yaml()
        holds_other_files = (self.root.is_dir() and any(self.root.iterdir())
                             and not (self.root / "config.yaml").is_file())
        if holds_other_files or (self.root.exists() and not self.root.is_dir()):
            # --overwrite deletes run folders only: a mistyped --output must not cost someone their files.
            raise RunExistsError(f"{self.root} is not empty and holds no run (no config.yaml); refusing to "
                                 f"{'delete' if overwrite else 'write into'} it. Choose another --output")
        if self.root.exists() and overwrite:
            shutil.rmtree(self.root)
        elif self.is_finished():
            raise RunExistsError(f"{self.root} already holds a finished run; pass --overwrite to start again")
        elif (self.root / "config.yaml").is_file() and (self.root / "config.yaml").read_text() != text:
            raise RunExistsError(
                f"{self.root} holds an unfinished run with a different config; pass --overwrite to discard "
                f"it, or --output to use another folder"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / "config.yaml", text)

    def save_class_names(self, class_names: list[str]) -> None:
        atomic_write_json(self.root / "class_names.json", list(class_names))

    def load_class_names(self) -> list[str]:
        return json.loads((self.root / "class_names.json").read_text())

    def save_model(self, model: keras.Model) -> Path:
        with atomic_path(self.model_path, suffix=".keras") as tmp:
            model.save(tmp)
        return self.model_path

    def training_seconds(self) -> float:
        """Seconds recorded by the finished phases (an interrupted phase counts its last invocation)."""
        return sum(float(json.loads(p.read_text()).get("seconds", 0.0)) for p in self.root.glob("phase_*.done.json"))

    def load_model(self) -> keras.Model:
        """The run's final model; `.keras` files load with safe_mode (no arbitrary code)."""
        import kerascv_tl.tasks  # noqa: F401  (registers the package's layers for deserialisation)
        import kerascv_tl.tasks.retinanet  # noqa: F401  (imports KerasHub, so only when a run is loaded)

        return load_keras_model(self.model_path)

    def history_files(self) -> list[tuple[str, Path]]:
        order = ("head", "fine_tune")
        found = [(p.stem.removeprefix("history_"), p) for p in self.root.glob("history_*.csv")]
        return sorted(found, key=lambda item: order.index(item[0]) if item[0] in order else len(order))


def checked_sources(config, run: RunFolder) -> tuple[object, object]:
    """(train, val) after the data check (`kerascv_tl.data.check`), with `data.on_bad` applied; the check's
    report goes to RUN/data_check.json."""
    from kerascv_tl.data.check import apply_on_bad, check_data

    started = time.time()
    check = check_data(config)
    log.info("data check took %.1f s", time.time() - started)
    atomic_write_json(run / "data_check.json", {"on_bad": config.data.on_bad, **check.to_dict()})
    apply_on_bad(check, config.data.on_bad)
    return check.train, check.val


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
    val_data,
    epochs: int,
    train_config,
    verbose: int = 2,
) -> bool:
    """Fits one phase with checkpointing, exact resume, early stopping and logs.

    Returns False if the phase was already done. A killed phase resumes at the step of its last backup
    (`train.backup_every_steps`, and every epoch end): the interrupted epoch is finished first (a `fit` of
    its remaining steps), then the remaining epochs.
    """
    done = run / f"phase_{phase}.done.json"
    phase_weights = run / f"phase_{phase}.weights.h5"
    if done.is_file() and phase_weights.is_file():
        load_weights(model, phase_weights)
        log.info("phase %s already finished in %s; reloaded its weights", phase, run.root)
        return False
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
            str(run.best_weights), monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True,
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
    started = time.time()
    while first_epoch < epochs:
        logged = [(e, v) for e, v in logged_epochs(run, phase, monitor) if e < first_epoch]
        if early is not None and early.resume(sorted(logged)):
            break
        # The first fit finishes an interrupted epoch (only its remaining steps), the second runs the rest.
        last_epoch = first_epoch + 1 if steps_done else epochs
        backup.prepare_fit(first_epoch, steps_done, train_data.steps)
        model.stop_training = False
        fit(train_data.stream(first_epoch, last_epoch, skip_steps=steps_done), validation_data=val_data,
            steps_per_epoch=train_data.steps - steps_done, initial_epoch=first_epoch, epochs=last_epoch,
            callbacks=callbacks, verbose=verbose)
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
    return True


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


def make_optimizer(train_config, learning_rate):
    name = train_config.optimizer
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=train_config.weight_decay or 1e-4)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {name!r}")


def compile_classifier(model: keras.Model, train_config, learning_rate, num_classes: int,
                       jit_compile: bool | str = "auto") -> None:
    """`jit_compile`: the config value (true, false, auto); see `kerascv_tl.precision.resolve_jit_compile`.
    A mixed_float16 model gets Keras' LossScaleOptimizer around the optimizer from `model.compile` itself."""
    from kerascv_tl.precision import resolve_jit_compile

    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if num_classes >= 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(
        optimizer=make_optimizer(train_config, learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train_config.label_smoothing),
        metrics=metrics,
        jit_compile=resolve_jit_compile(jit_compile),
    )


@dataclass
class TaskSetup:
    """What a recipe works with once its data and model are built (sources have `.class_names`)."""

    config: object
    run: RunFolder
    train: object
    val: object
    backbone: object  # kerascv_tl.backbones.Backbone
    model: keras.Model
    strategy: object

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names


def write_report(out_dir: str | Path, metrics: dict, histories=(), extra: dict | None = None) -> dict:
    """Training curves (when there are histories) and metrics.json, merged with `extra`, in `out_dir`."""
    from kerascv_tl.evaluation.plots import plot_training_curves

    out = Path(out_dir)
    if histories:
        plot_training_curves(list(histories), out / "training_curves.png")
    metrics.update(extra or {})
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def run_summary(s: TaskSetup, task: str) -> dict:
    """The facts every detection/segmentation metrics.json carries beside the task's own figures.

    Wall times go to timings.json instead, so that two runs with the same seed write identical metrics."""
    return {"recipe": s.config.recipe, "task": task, "backbone": s.backbone.name, "num_train_images": len(s.train)}


def write_timings(run: RunFolder, started: float) -> dict:
    timings = {"train_wall_time_s": round(run.training_seconds(), 1),
               "this_invocation_wall_time_s": round(time.time() - started, 1)}
    atomic_write_json(run / "timings.json", timings)
    return timings


def write_model_card(s: TaskSetup, metrics: dict) -> None:
    from kerascv_tl.export.card import model_card
    from kerascv_tl.recipes.classification import backbone_info

    card = model_card(s.config, s.class_names, backbone_info(s.backbone), metrics, str(s.run.root))
    card["training_time_s"] = round(s.run.training_seconds(), 1)
    atomic_write_json(s.run / "model_card.json", card)
