"""Class imbalance on real photos: flowers5 with its training set cut to 100/50/25/12/6 images per class.

The validation set stays as it is (40 images per class, balanced). The packaged feature-extraction recipe
(frozen ImageNet MobileNetV2, cached embeddings) runs for seeds 1-3 with

* `none`: the recipe as committed (every training image once per epoch, unweighted loss),
* `class_weight`: `--set train.class_weight=balanced` (per-example loss weights n / (C * n_c)),
* `sampling`: `--set data.sampling=balanced` (each epoch draws the classes equally often),

each in its own `kerascv-tl train` process, and prints the mean over the seeds of macro F1, balanced accuracy
and accuracy (and the rarest class's recall). The nine runs share one feature cache, so the backbone runs
over each image once.

    python benchmarks/imbalance.py [--seeds 1,2,3] [--counts 100,50,25,12,6]

Writes benchmarks/results/imbalance.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, assets, write_result

SETTINGS = {
    "none": [],
    "class_weight": ["train.class_weight=balanced"],
    "sampling": ["data.sampling=balanced"],
}
FIGURES = ("macro_f1", "balanced_accuracy", "accuracy")


def imbalanced_copy(train: Path, counts: list[int], out: Path) -> dict[str, int]:
    """Links the first counts[i] images (sorted by name) of the i-th class folder (sorted) into `out`."""
    classes = sorted(p.name for p in train.iterdir() if p.is_dir())
    if len(classes) != len(counts):
        raise SystemExit(f"{train} has {len(classes)} classes but --counts gives {len(counts)}")
    kept = {}
    for name, count in zip(classes, counts):
        (out / name).mkdir(parents=True)
        files = sorted(p for p in (train / name).iterdir() if p.is_file())[:count]
        for file in files:
            (out / name / file.name).symlink_to(file.resolve())
        kept[name] = len(files)
    return kept


def train_once(subset: Path, seed: int, overrides: list[str], output: Path, feature_cache: Path) -> dict:
    command = [sys.executable, "-m", "kerascv_tl.cli", "train", "flowers_feature_extraction", "-q"]
    command += ["--output", str(output), "--set", f"data.train={subset}", "--set", f"seed={seed}"]
    command += ["--set", f"train.feature_cache_dir={feature_cache}"]
    for override in overrides:
        command += ["--set", override]
    env = dict(os.environ, KERASCV_TL_ASSETS=str(assets()), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return json.loads((output / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--counts", default="100,50,25,12,6")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    counts = [int(c) for c in args.counts.split(",")]
    results: dict = {"counts": {}, "settings": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        subset = Path(work) / "flowers5_imbalanced" / "train"
        results["counts"] = imbalanced_copy(assets() / "flowers5" / "train", counts, subset)
        rarest = min(results["counts"], key=results["counts"].get)
        for setting, overrides in SETTINGS.items():
            per_seed = []
            for seed in seeds:
                metrics = train_once(subset, seed, overrides, Path(work) / f"{setting}_{seed}", Path(work) / "cache")
                row = {key: round(float(metrics[key]), 4) for key in FIGURES}
                row["rarest_recall"] = round(float(metrics["per_class"][rarest]["recall"]), 4)
                per_seed.append({"seed": seed, **row})
            mean = {key: round(statistics.mean(r[key] for r in per_seed), 4) for key in (*FIGURES, "rarest_recall")}
            results["settings"][setting] = {"overrides": overrides, "mean": mean, "per_seed": per_seed}
            shown = ", ".join(f"{key} {value:.3f}" for key, value in mean.items())
            print(f"{setting:13s} {shown}   (seeds {args.seeds})", flush=True)
    results["rarest_class"] = rarest
    results["command"] = "python benchmarks/imbalance.py --seeds " + args.seeds + " --counts " + args.counts
    results["wall_s"] = round(time.perf_counter() - started, 1)
    write_result("imbalance", results)


if __name__ == "__main__":
    main()
