"""`train(config)`: one recipe run, the same path for every task.

config -> task (`kerascv_tl.tasks.registry`) -> checked data -> model (under the strategy and the precision
policy) -> the two-phase schedule (`kerascv_tl.training.schedule`) -> evaluation -> model card, all in one run
folder (`kerascv_tl.run_folder`) that a re-run resumes. The model stays a plain keras.Model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kerascv_tl.backbones import backbone_from_config
from kerascv_tl.console import device_line
from kerascv_tl.data.check import apply_on_bad, check_data
from kerascv_tl.distribute import (
    detach_from_strategy,
    discard_worker_run_dir,
    resolve_strategy,
    scale_for_replicas,
    synchronize_batch_norm,
    worker_run_dir,
)
from kerascv_tl.export.card import model_card
from kerascv_tl.precision import precision_scope
from kerascv_tl.run_folder import RunExistsError, RunFolder, default_run_dir
from kerascv_tl.tasks.base import Task, TaskSetup
from kerascv_tl.tasks.presets import start_from_preset
from kerascv_tl.tasks.registry import get_task
from kerascv_tl.training.fit import seed_everything
from kerascv_tl.training.schedule import run_schedule
from kerascv_tl.utils.io import atomic_write_json

if TYPE_CHECKING:
    from kerascv_tl.config import RecipeConfig

log = logging.getLogger(__name__)

__all__ = ["RunExistsError", "RunFolder", "checked_sources", "default_run_dir", "finish", "set_up", "train"]


def train(
    config: RecipeConfig,
    output: str | Path | None = None,
    overwrite: bool = False,
    config_path: str | None = None,
    verbose: int | None = None,
    sources: tuple[Any, Any] | None = None,
    evaluate: Callable[..., dict] | None = None,
) -> tuple[RunFolder, dict]:
    """Runs the config's recipe in a run folder (resuming an interrupted one); returns (run, metrics).
    `verbose` is `model.fit`'s (default: `kerascv_tl.console.keras_verbose()`: a progress bar on a terminal).
    `sources`: (train, val) already checked (`checked_sources`), e.g. one fold of a cross-validation, trained
    instead of the config's `data:` (which is then neither read nor checked again). `evaluate(task, setup,
    histories, extra) -> metrics` replaces `task.evaluate` on the validation source (it must write the same
    reports), e.g. a cross-validation fold's evaluation from cached embeddings."""
    started = time.time()
    task = get_task(config.task)
    # set_up and finish are looked up on this module at call time (tests wrap them to look inside a run).
    # Every worker of a multi-worker run trains; only the chief's run folder is kept.
    run = RunFolder(worker_run_dir(output or default_run_dir(config, config_path)))
    if config.export.name is None:
        config.export.name = run.root.name
    run.prepare(config, overwrite=overwrite)
    seed_everything(config.seed, config.deterministic)
    strategy = resolve_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    config = scale_for_replicas(config, replicas)
    atomic_write_json(
        run / "distribution.json",
        {
            "strategy": type(strategy).__name__,
            "replicas": replicas,
            "global_batch_size": config.train.batch_size,
            "learning_rate": config.train.learning_rate,
            "fine_tune_learning_rate": config.train.fine_tune_learning_rate,
        },
    )
    log.debug(
        "strategy %s with %d replica(s): global batch %d", type(strategy).__name__, replicas, config.train.batch_size
    )
    log.info("%s", device_line(strategy))
    setup = set_up(task, config, run, strategy, sources)
    if replicas > 1 and config.train.sync_batch_norm:
        log.info("BatchNorm statistics over the global batch in %d layer(s)", synchronize_batch_norm(setup.model))
    run_schedule(task, setup, verbose)
    # Evaluation and export run on this process's devices alone (the replicas hold the same weights).
    detach_from_strategy(setup.model)
    metrics = finish(task, setup, evaluate)
    run.write_timings(started)
    log.info("run finished in %.0f s", time.time() - started)  # the CLI prints the folder and the metrics
    discard_worker_run_dir(run.root)
    return run, metrics


def checked_sources(config: RecipeConfig, run: RunFolder) -> tuple[Any, Any]:
    """(train, val) after the data check (`kerascv_tl.data.check`), with `data.on_bad` applied; the check's
    report goes to RUN/data_check.json."""
    started = time.time()
    check = check_data(config)
    log.debug("data check took %.1f s", time.time() - started)
    atomic_write_json(run / "data_check.json", {"on_bad": config.data.on_bad, **check.to_dict()})
    apply_on_bad(check, config.data.on_bad)
    return check.train, check.val


def set_up(task: Task, config: RecipeConfig, run: RunFolder, strategy, sources=None) -> TaskSetup:
    """Checked sources (`sources`, or the config's data checked here), class names, the task model under the
    strategy and precision policy: the TaskSetup."""
    train_source, val_source = sources if sources is not None else checked_sources(config, run)
    log.debug("%s", task.describe_data(train_source, val_source))
    run.save_class_names(train_source.class_names)
    # The model is built under the config's dtype policy, which is put back afterwards (kerascv_tl/precision.py).
    start = None
    with strategy.scope(), precision_scope(config.precision):
        if config.model.preset is not None:
            model, backbone, start = start_from_preset(config, task.keras_hub_task, train_source.class_names)
        else:
            backbone = backbone_from_config(config)
            model = task.build_model(config, backbone, train_source)
    atomic_write_json(run / "backbone.json", backbone.info())
    setup = TaskSetup(config, run, train_source, val_source, backbone, model, strategy, start)
    if start is not None:
        evaluate_start(task, setup)
    return setup


def evaluate_start(task: Task, setup: TaskSetup) -> None:
    """Evaluates a preset start before any training step (RUN/epoch_0/: the task's metrics and pictures), so the
    run shows what the preset and the head surgery bought; a resumed run reads the figures back."""
    out = setup.run / "epoch_0"
    if not (out / "metrics.json").is_file():
        log.info("evaluating the preset start before training (epoch 0)")
        task.evaluate(setup.model, setup.val, setup.config, out, setup.class_names, setup.config.train.batch_size)
    metrics = json.loads((out / "metrics.json").read_text())
    setup.start.epoch_0 = {k: metrics[k] for k in task.card_metrics if k in metrics}
    log.info("epoch 0 (preset start): %s", task.headline(metrics))


def finish(task: Task, setup: TaskSetup, evaluate: Callable[..., dict] | None = None) -> dict:
    """Saves the final model, evaluates it on the validation data (`task.evaluate`, or `evaluate`: see `train`)
    and writes the model card."""
    run, config = setup.run, setup.config
    run.save_model(setup.model)
    histories, extra = run.history_files(), task.run_summary(setup)
    if evaluate is not None:
        metrics = evaluate(task, setup, histories, extra)
    else:
        metrics = task.evaluate(
            setup.model, setup.val, config, run.root, setup.class_names, config.train.batch_size, histories, extra
        )
    headline = {k: metrics[k] for k in task.card_metrics if k in metrics}
    counts = {"train_images": len(setup.train), "val_images": len(setup.val)}
    card = model_card(
        config, setup.class_names, setup.backbone.info(), task.serving_resize(config), headline, str(run.root), counts
    )
    run.write_model_card(card)
    return metrics
