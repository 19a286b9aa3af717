"""K-fold cross-validation of a recipe: `kerascv-tl cv CONFIG --folds K`.

The data is read and checked once (`kerascv_tl.recipes.checked_sources`); the training and validation examples
are pooled ("all the labelled data") and dealt into K folds (`folds.py`: stratified by class for single-label
classification, by image otherwise, from `config.seed`). Fold k trains the recipe as `kerascv-tl train` would, on
the other K-1 folds, and is evaluated on fold k, in its own run folder PARENT/fold_k. The per-fold headline
metrics (the task's `card_metrics`) and their mean and std go to PARENT/cv.json and PARENT/cv.md.

Resuming: PARENT/cv_plan.json holds the config and K; a rerun with another one is refused. Each fold folder holds
fold.json (its validation files and a digest of its training files), checked on every rerun, so a finished fold
(metrics.json, model, card) is skipped only when it was trained on the same split, and an unfinished one resumes
at its last step (`kerascv_tl.recipes.train`). The frozen-backbone feature cache is per image, so the folds
share it: the backbone embeds each image once for all K folds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kerascv_tl.config import ConfigError
from kerascv_tl.crossval.folds import fold_indices, fold_sources, is_stratified, pool_sources
from kerascv_tl.crossval.report import markdown_table, summarize
from kerascv_tl.run_folder import RunExistsError, RunFolder, default_run_dir
from kerascv_tl.utils.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from kerascv_tl.config import RecipeConfig

log = logging.getLogger(__name__)

__all__ = ["CrossValidation", "cross_validate", "default_cv_dir"]

PLAN = "cv_plan.json"


@dataclass
class CrossValidation:
    """What `cross_validate` leaves: the parent folder, the fold runs, the summary and where extras went."""

    root: Path
    fold_runs: list[RunFolder]
    report: dict
    table: str
    final: RunFolder | None = None
    exported: dict[str, Path] = field(default_factory=dict)


def default_cv_dir(config: RecipeConfig, config_path: str | None) -> Path:
    """`<output_dir>/<recipe name>_cv`: beside the run `kerascv-tl train` would write, never in it."""
    run_dir = default_run_dir(config, config_path)
    return run_dir.with_name(f"{run_dir.name}_cv")


def cross_validate(
    config: RecipeConfig,
    folds: int,
    output: str | Path | None = None,
    overwrite: bool = False,
    final: bool = False,
    export_ensemble: bool = False,
    config_path: str | None = None,
    verbose: int | None = None,
) -> CrossValidation:
    """Trains and evaluates the K folds (resuming an interrupted cross-validation), then optionally the final
    model on all the labelled data (PARENT/final) and the fold ensemble's SavedModel (PARENT/ensemble/<version>)."""
    from kerascv_tl.recipes import checked_sources
    from kerascv_tl.tasks.registry import get_task

    task = get_task(config.task)
    if export_ensemble:
        _check_ensemble_offered(task)
    root = Path(output) if output else default_cv_dir(config, config_path)
    _prepare_parent(root, config, folds, overwrite)
    started = time.time()
    train_source, val_source = checked_sources(config, RunFolder(root))
    pooled = pool_sources(train_source, val_source)
    log.info(
        "cross-validation: %d folds over %d labelled examples (%d training + %d validation), %s",
        folds,
        len(pooled),
        len(train_source),
        len(val_source),
        "stratified by class" if is_stratified(pooled) else "split by image",
    )
    fold_runs, fold_metrics = [], []
    for k, validation in enumerate(fold_indices(pooled, folds, config.seed), start=1):
        run, metrics = _run_fold(config, root, pooled, validation, k, folds, verbose)
        fold_runs.append(run)
        fold_metrics.append(metrics)
    summary, report, table = _write_report(root, task, config, fold_runs, fold_metrics, (train_source, val_source))
    log.info("cross-validation of %d folds took %.0f s in this invocation", folds, time.time() - started)
    result = CrossValidation(root, fold_runs, report, table)
    if final:
        result.final = _train_final(config, root, pooled, verbose)
    if export_ensemble:
        from kerascv_tl.crossval.ensemble import export_ensemble as write_ensemble

        result.exported["ensemble"] = write_ensemble(task, fold_runs, root / "ensemble", summary)
    return result


def _write_report(root: Path, task, config, fold_runs, fold_metrics, sources) -> tuple[dict, dict, str]:
    """PARENT/cv.json and PARENT/cv.md from the folds' metrics: (summary, report, table)."""
    train_source, val_source = sources
    examples = len(train_source) + len(val_source)
    stratified = "stratified by class" if is_stratified(train_source) else "split by image"
    summary = summarize(fold_metrics, task.card_metrics)
    table = markdown_table(summary, len(fold_runs), examples)
    report = {
        "folds": len(fold_runs),
        "seed": config.seed,
        "examples": examples,
        "data": (
            f"all the labelled data: {len(train_source)} training + {len(val_source)} validation examples pooled, "
            f"{stratified}"
        ),
        "std": "population standard deviation over the folds (ddof=0)",
        "metrics": summary,
        "per_fold": [
            {"fold": k, "run": run.root.name, **{name: m[name] for name in summary}}
            for k, (run, m) in enumerate(zip(fold_runs, fold_metrics), start=1)
        ],
    }
    atomic_write_json(root / "cv.json", report)
    atomic_write_text(root / "cv.md", table)
    return summary, report, table


def _check_ensemble_offered(task) -> None:
    from kerascv_tl.tasks.classification import ClassificationTask

    if not isinstance(task, ClassificationTask):
        raise ConfigError(
            f"--export-ensemble averages class probabilities, which only classification models give; "
            f"{task.name} is not offered (export one fold's run, or the --final model, instead)"
        )


def _prepare_parent(root: Path, config: RecipeConfig, folds: int, overwrite: bool) -> None:
    """Creates PARENT (or, with `overwrite`, starts it again) and refuses to resume one planned otherwise."""
    plan = {"folds": folds, "config": config.to_yaml()}
    plan_file = root / PLAN
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and not plan_file.is_file())):
        # --overwrite deletes cross-validation folders only: a mistyped --output must not cost someone their files.
        raise RunExistsError(
            f"{root} is not empty and holds no cross-validation (no {PLAN}); refusing to "
            f"{'delete' if overwrite else 'write into'} it. Choose another --output"
        )
    if overwrite and root.exists():
        shutil.rmtree(root)
    elif plan_file.is_file():
        earlier = json.loads(plan_file.read_text())
        if earlier != plan:
            what = "fold count" if earlier.get("folds") != folds else "config"
            raise RunExistsError(
                f"{root} holds a cross-validation with another {what}; pass --overwrite to start again, or --output "
                f"to use another folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan_file, plan)


def _fold_config(config: RecipeConfig, name: str) -> RecipeConfig:
    fold_config = copy.deepcopy(config)
    fold_config.export.name = f"{config.export.name or 'model'}_{name}"
    return fold_config


def _membership(train: Any, val: Any, k: int, folds: int, seed: int) -> dict:
    digest = hashlib.sha256("\n".join(train.image_paths()).encode("utf-8", "surrogateescape")).hexdigest()
    return {
        "fold": k,
        "folds": folds,
        "seed": seed,
        "train_examples": len(train),
        "train_paths_sha256": digest,
        "validation": list(val.image_paths()),
    }


def _run_fold(config, root: Path, pooled, validation, k: int, folds: int, verbose) -> tuple[RunFolder, dict]:
    """Fold k: checks (or writes) its fold.json, then skips it when finished or trains it (resuming)."""
    from kerascv_tl.crossval.cached_eval import cached_evaluation
    from kerascv_tl.recipes import train
    from kerascv_tl.tasks.registry import get_task

    fold_train, fold_val = fold_sources(pooled, validation, k, folds)
    run = RunFolder(root / f"fold_{k}")
    membership = _membership(fold_train, fold_val, k, folds, config.seed)
    recorded = run / "fold.json"
    if recorded.is_file() and json.loads(recorded.read_text()) != membership:
        raise RunExistsError(
            f"{run.root} was trained on another split of the data (its fold.json differs: the data, the seed or "
            f"--folds changed); pass --overwrite to start the cross-validation again"
        )
    if run.is_finished():
        log.info("fold %d/%d: finished earlier (%s), skipped", k, folds, run.root)
        return run, json.loads((run / "metrics.json").read_text())
    fold_config = _fold_config(config, run.root.name)
    run.prepare(fold_config)  # the run folder (config.yaml) first: `train` resumes a folder that holds one
    atomic_write_json(recorded, membership)
    log.info("fold %d/%d: training on %d examples, validating on %d", k, folds, len(fold_train), len(fold_val))
    evaluate = cached_evaluation(get_task(config.task), config)
    return train(fold_config, output=run.root, verbose=verbose, sources=(fold_train, fold_val), evaluate=evaluate)


def _train_final(config: RecipeConfig, root: Path, pooled, verbose) -> RunFolder:
    """PARENT/final: the recipe trained on all the labelled data. There is no held-out data left, so early
    stopping is off, the checkpoint kept is the epoch of lowest training loss (`train.monitor: loss`, normally the
    last), and its metrics.json measures the model on the data it was trained on (not an estimate: cv.json is)."""
    from kerascv_tl.recipes import train

    final_config = _fold_config(config, "final")
    final_config.train.early_stopping_patience = 0
    final_config.train.monitor = "loss"
    run = RunFolder(root / "final")
    if run.is_finished():
        log.info("final model: finished earlier (%s), skipped", run.root)
        return run
    log.info("final model: training on all %d labelled examples (no held-out data)", len(pooled))
    run, _ = train(final_config, output=run.root, verbose=verbose, sources=(pooled, pooled))
    return run
