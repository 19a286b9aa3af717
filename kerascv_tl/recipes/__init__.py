"""Recipes orchestrate config -> data -> model -> fit -> evaluate; the model stays a plain keras.Model."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kerascv_tl.recipes.runner import RunExistsError, RunFolder, seed_everything

log = logging.getLogger(__name__)

__all__ = ["RunExistsError", "RunFolder", "default_run_dir", "train"]


def default_run_dir(config, config_path: str | None) -> Path:
    name = Path(config_path).stem if config_path else f"{config.task}_{config.recipe}"
    return Path(config.output_dir) / name


def train(config, output: str | Path | None = None, overwrite: bool = False, config_path: str | None = None,
          verbose: int = 2) -> tuple[RunFolder, dict]:
    """Runs the config's recipe in a run folder (resuming an interrupted one); returns (run, metrics)."""
    from kerascv_tl.recipes import classification, detection, feature_extraction, fine_tune, segmentation

    started = time.time()
    run = RunFolder(output or default_run_dir(config, config_path))
    if config.export.name is None:
        config.export.name = run.root.name
    run.prepare(config, overwrite=overwrite)
    seed_everything(config.seed, config.deterministic)
    if config.task == "detection":
        setup = detection.setup(config, run)
        detection.run(setup, verbose=verbose)
        metrics = detection.finish(setup, started)
        headline = f"map_50 {metrics['map_50']:.4f}, map_50_95 {metrics['map_50_95']:.4f}"
    elif config.task == "segmentation":
        setup = segmentation.setup(config, run)
        segmentation.run(setup, verbose=verbose)
        metrics = segmentation.finish(setup, started)
        headline = f"miou {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f}"
    else:
        setup = classification.setup(config, run)
        recipe = {"feature_extraction": feature_extraction.run, "fine_tune": fine_tune.run}[config.recipe]
        recipe(setup, verbose=verbose)
        metrics = classification.finish(setup, started)
        headline = f"accuracy {metrics['accuracy']:.4f}"
    log.info("run finished in %.0f s: %s (%s)", time.time() - started, run.root, headline)
    return run, metrics
