"""Recipes orchestrate config -> data -> model -> fit -> evaluate; the model stays a plain keras.Model."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kerascv_tl.distribute import (detach_from_strategy, discard_worker_run_dir, resolve_strategy, scale_for_replicas,
                                  synchronize_batch_norm, worker_run_dir)
from kerascv_tl.recipes.runner import RunExistsError, RunFolder, seed_everything, write_timings
from kerascv_tl.utils.io import atomic_write_json

log = logging.getLogger(__name__)

__all__ = ["RunExistsError", "RunFolder", "default_run_dir", "train"]

HEADLINES = {
    "classification": lambda m: f"accuracy {m['accuracy']:.4f}",
    "detection": lambda m: f"map_50 {m['map_50']:.4f}, map_50_95 {m['map_50_95']:.4f}",
    "segmentation": lambda m: f"miou {m['miou']:.4f}, pixel accuracy {m['pixel_accuracy']:.4f}",
}


def default_run_dir(config, config_path: str | None) -> Path:
    name = Path(config_path).stem if config_path else f"{config.task}_{config.recipe}"
    return Path(config.output_dir) / name


def train(config, output: str | Path | None = None, overwrite: bool = False, config_path: str | None = None,
          verbose: int = 2) -> tuple[RunFolder, dict]:
    """Runs the config's recipe in a run folder (resuming an interrupted one); returns (run, metrics)."""
    from kerascv_tl.recipes import classification, detection, feature_extraction, fine_tune, segmentation

    started = time.time()
    # Every worker of a multi-worker run trains; only the chief's run folder is kept.
    run = RunFolder(worker_run_dir(output or default_run_dir(config, config_path)))
    if config.export.name is None:
        config.export.name = run.root.name
    run.prepare(config, overwrite=overwrite)
    seed_everything(config.seed, config.deterministic)
    strategy = resolve_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    config = scale_for_replicas(config, replicas)
    atomic_write_json(run / "distribution.json", {
        "strategy": type(strategy).__name__, "replicas": replicas, "global_batch_size": config.train.batch_size,
        "learning_rate": config.train.learning_rate, "fine_tune_learning_rate": config.train.fine_tune_learning_rate})
    log.info("strategy %s with %d replica(s): global batch %d", type(strategy).__name__, replicas,
             config.train.batch_size)
    task = {"classification": classification, "detection": detection, "segmentation": segmentation}[config.task]
    setup = task.setup(config, run, strategy)
    if replicas > 1 and config.train.sync_batch_norm:
        log.info("BatchNorm statistics over the global batch in %d layer(s)", synchronize_batch_norm(setup.model))
    if config.task == "classification":
        {"feature_extraction": feature_extraction.run, "fine_tune": fine_tune.run}[config.recipe](setup, verbose)
    else:
        task.run(setup, verbose=verbose)
    # Evaluation and export run on this process's devices alone (the replicas hold the same weights).
    detach_from_strategy(setup.model)
    metrics = task.finish(setup)
    write_timings(run, started)
    log.info("run finished in %.0f s: %s (%s)", time.time() - started, run.root, HEADLINES[config.task](metrics))
    discard_worker_run_dir(run.root)
    return run, metrics

