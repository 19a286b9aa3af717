"""`kerascv-tl compare`: which backbone suits this classification data, measured here.

For each backbone: the weights it can have on this machine without a download (`offline`), a linear probe
on its cached embeddings of the config's data, its parameter count, extraction throughput and batch-1
latency (`probe`). The table goes to compare.json and compare.md and the accuracy/latency scatter to
compare_accuracy_latency.png (`report`, `kerascv_tl.evaluation.compare_plot`).
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from kerascv_tl.backbones import REGISTRY
from kerascv_tl.compare.offline import RANDOM, UNAVAILABLE, check_names, resolve
from kerascv_tl.compare.probe import ProbeSettings, probe_backbone
from kerascv_tl.compare.report import best_backbone, best_lines, markdown_table, summary, write_report
from kerascv_tl.config import ConfigError
from kerascv_tl.evaluation.compare_plot import plot_accuracy_latency
from kerascv_tl.precision import precision_scope
from kerascv_tl.recipes import checked_sources
from kerascv_tl.tasks.classification import ClassificationTask
from kerascv_tl.tasks.registry import get_task
from kerascv_tl.training.fit import seed_everything

if TYPE_CHECKING:
    from kerascv_tl.config import RecipeConfig

log = logging.getLogger(__name__)

PLOT_NAME = "compare_accuracy_latency.png"
UNPROBED_KEYS = ("params", "embedding_dim", "accuracy", "macro_f1", "images_per_s", "images_per_s_from", "latency_ms")

__all__ = ["PLOT_NAME", "ProbeSettings", "best_backbone", "compare_backbones", "markdown_table"]


def compare_backbones(
    config: RecipeConfig,
    output: str | Path,
    backbones: list[str] | None = None,
    weights: dict[str, str] | None = None,
    allow_random: bool = False,
    max_latency_ms: float | None = None,
    settings: ProbeSettings | None = None,
    config_name: str = "config",
) -> dict:
    """Probes each backbone on the config's data and writes the report into `output`; returns compare.json's dict.

    `backbones` None: the config's backbone, those named in `weights`, and every registry backbone whose
    ImageNet weights are already on disk (random-weight ones are not added by default). A backbone without
    weights here is a row marked unavailable, or with `allow_random` a probe of a seeded random initialisation.
    """
    if not isinstance(get_task(config.task), ClassificationTask):
        raise ConfigError(f"compare probes classification configs; this one's task is {config.task}")
    weights = dict(weights or {})
    explicit = backbones is not None
    names = list(backbones) if explicit else _default_names(config, weights)
    check_names(names, config, weights)
    settings = settings or ProbeSettings()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    train, val = checked_sources(config, output)  # writes output/data_check.json
    cache_dir = config.train.feature_cache_dir or output / ".feature_cache"
    rows, skipped = [], []
    for name in names:
        row = _compare_one(name, config, weights, allow_random and explicit, train, val, cache_dir, settings)
        if row["weights"] != UNAVAILABLE:
            rows.append(row)
        elif explicit:
            log.warning("%s: no weights here (%s); not probed", name, row["note"])
            rows.append(row)
        else:
            log.info("%s: not compared, no weights here (%s)", name, row["note"])
            skipped.append({"name": name, "note": row["note"]})
    best = summary(rows, max_latency_ms)
    meta = {"task": config.task, "image_size": config.data.image_size, "train_images": len(train)}
    meta |= {"val_images": len(val), "probe": vars(settings), "not_compared": skipped}
    write_report(output, config_name, rows, best, meta)
    plot_accuracy_latency(rows, output / PLOT_NAME, max_latency_ms, random_key=RANDOM)
    return {"config": config_name, **meta, **best, "backbones": rows}


def print_lines(result: dict) -> list[str]:
    """The table and the best backbones, as the CLI prints them."""
    lines = [markdown_table(result["backbones"]).rstrip("\n")]
    if any(row["weights"] == RANDOM for row in result["backbones"]):
        lines.append("* random weights (not pretrained)")
    return lines + best_lines(result)


def _compare_one(name, config, weights, allow_random, train, val, cache_dir, settings) -> dict:
    started = time.time()
    seed_everything(config.seed)  # a random initialisation is the same on every run (and in its cache key)
    try:
        with precision_scope(config.precision):  # the backbone as `train` would build it
            resolved = resolve(name, config, weights, allow_random)
        row = {"name": name, "weights": resolved.weights, "random": resolved.random, "note": resolved.note}
        if resolved.backbone is None:
            row |= dict.fromkeys(UNPROBED_KEYS)
        else:
            log.info("%s (%s): probing", name, resolved.weights)
            row |= probe_backbone(resolved.backbone, train, val, config, cache_dir, settings)
            log.info("%s: probe accuracy %.3f, %.1f ms", name, row["accuracy"], row["latency_ms"])
    finally:
        keras.backend.clear_session()  # one backbone's graph at a time (also one built only to find no weights)
        gc.collect()
    return row | {"seconds": round(time.time() - started, 1)}


def _default_names(config: RecipeConfig, weights: dict[str, str]) -> list[str]:
    names = [config.backbone.name, *weights]
    return list(dict.fromkeys(names + [name for name in REGISTRY if name not in names]))
