"""Quality and cost on real data: the shipped recipes run through the CLI, each in its own process.

Prints and records each run's validation figures (from its metrics.json), wall time of the whole command,
the training time the run itself recorded (timings.json) and peak RSS of its process. The recipes run exactly as
committed, so that these are the figures README quotes (`benchmarks/quoted_figures.py` checks them);
`--quick` runs detection and segmentation with fewer epochs (`--set` below), for a quick look only.

    python benchmarks/real_data.py [--quick] [--only flowers_fine_tune,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, assets, git_commit, write_result

# name -> (recipe, overrides for the quick version, figures to report)
RUNS = {
    "flowers_feature_extraction": ("flowers_feature_extraction.yaml", [], ["accuracy", "top5_accuracy"]),
    "flowers_fine_tune": ("flowers_fine_tune.yaml", [], ["accuracy", "top5_accuracy"]),
    "pennfudan_detection": (
        "pennfudan_detection.yaml",
        ["train.head_epochs=4", "train.epochs=10"],
        ["map_50", "map_50_95"],
    ),
    "pennfudan_segmentation": (
        "pennfudan_segmentation.yaml",
        ["train.head_epochs=3", "train.epochs=7"],
        ["per_class_iou.person", "miou"],
    ),
}


def figure(metrics: dict, key: str):
    value = metrics
    for part in key.split("."):
        value = value[part]
    return round(float(value), 4)


def run_recipe(recipe: str, overrides: list[str], output: Path) -> dict:
    """Runs `kerascv-tl train` in a child process; wall seconds, the child's peak RSS and its metrics."""
    command = [sys.executable, "-m", "kerascv_tl.cli", "train", recipe.removesuffix(".yaml"), "--output", str(output)]
    for override in overrides:
        command += ["--set", override]
    if recipe.startswith("flowers"):  # the classification recipes cache embeddings: from cold, part of the cost
        command += ["--set", f"train.feature_cache_dir={output.parent / f'{output.name}_feature_cache'}"]
    env = dict(os.environ, KERASCV_TL_ASSETS=str(assets()), TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log_tail = child.stdout.read()[-3000:]
    _, status, usage = os.wait4(child.pid, 0)  # reaps the child itself: its own rusage, peak RSS included
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code
    if code != 0:
        raise RuntimeError(f"{recipe} failed (exit {code}):\n{log_tail}")
    timings = json.loads((output / "timings.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "train_s": timings.get("train_wall_time_s"),
        "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 2),  # ru_maxrss: KiB on Linux
        "metrics": json.loads((output / "metrics.json").read_text()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="detection and segmentation with fewer epochs")
    parser.add_argument("--only", default=",".join(RUNS))
    args = parser.parse_args()
    # --only updates those runs and keeps the others' last measurement (each row says its commit).
    earlier = RESULTS / "real_data.json"
    results = json.loads(earlier.read_text()).get("runs", {}) if earlier.is_file() else {}
    commit = git_commit()
    with tempfile.TemporaryDirectory() as work:
        for name in args.only.split(","):
            recipe, quick, keys = RUNS[name]
            overrides = quick if args.quick else []
            run = run_recipe(recipe, overrides, Path(work) / name)
            results[name] = {
                "command": " ".join(["kerascv-tl train", f"recipes/{recipe}"] + [f"--set {o}" for o in overrides]),
                **{key: figure(run["metrics"], key) for key in keys},
                "wall_s": run["wall_s"],
                "train_s": run["train_s"],
                "peak_rss_gb": run["peak_rss_gb"],
                "commit": commit,
            }
            shown = ", ".join(f"{key} {results[name][key]:.3f}" for key in keys)
            print(f"{name:28s} {shown}   {run['wall_s'] / 60:5.1f} min   peak RSS {run['peak_rss_gb']:.2f} GB")
    write_result("real_data", {"runs": results})


if __name__ == "__main__":
    main()
