"""What `kerascv-tl cv` and `kerascv-tl compare` cost and find on flowers5, each command in its own process.

* one `kerascv-tl train flowers_feature_extraction` from a cold feature cache, then
  `kerascv-tl cv flowers_feature_extraction --folds 5` from another cold cache: both wall times, their ratio
  (the folds share the per-image embedding cache, so five folds should cost less than two runs) and the
  cross-validated mean +- std;
* `kerascv-tl compare flowers_feature_extraction --backbones mobilenet_v2,mobilenet_v3_small,mobilenet_v3_large
  --allow-random` (the shared ImageNet MobileNetV2 file and two random-weight backbones): its rows.

    python benchmarks/cv_compare.py

Writes benchmarks/results/cv_compare.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, assets, write_result

RECIPE = "flowers_feature_extraction"
COMPARED = "mobilenet_v2,mobilenet_v3_small,mobilenet_v3_large"


def run(arguments: list[str]) -> float:
    """Runs `kerascv-tl ARGUMENTS` in a child process; its wall seconds."""
    command = [sys.executable, "-m", "kerascv_tl.cli", *arguments, "-q"]
    env = dict(os.environ, KERASCV_TL_ASSETS=str(assets()), TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return round(wall, 1)


def main() -> None:
    result: dict = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        one = run(["train", RECIPE, "--output", str(work / "one"), "--set", f"train.feature_cache_dir={work / 'c1'}"])
        accuracy = json.loads((work / "one" / "metrics.json").read_text())["accuracy"]
        folds = run(
            [
                "cv",
                RECIPE,
                "--folds",
                "5",
                "--output",
                str(work / "cv"),
                "--set",
                f"train.feature_cache_dir={work / 'c2'}",
            ]
        )
        cv = json.loads((work / "cv" / "cv.json").read_text())
        result["cv"] = {
            "train_command": f"kerascv-tl train {RECIPE}",
            "train_wall_s": one,
            "train_accuracy": round(float(accuracy), 4),
            "cv_command": f"kerascv-tl cv {RECIPE} --folds 5",
            "cv_wall_s": folds,
            "ratio": round(folds / one, 2),
            "table": (work / "cv" / "cv.md").read_text(),
            "metrics": cv["metrics"],
        }
        print(f"train {one:.1f} s (accuracy {accuracy:.4f}); cv --folds 5 {folds:.1f} s: {folds / one:.2f}x")
        print(result["cv"]["table"])
        compare_out = work / "compare"
        wall = run(["compare", RECIPE, "--backbones", COMPARED, "--allow-random", "--output", str(compare_out),
                    "--set", f"train.feature_cache_dir={work / 'c3'}"])  # fmt: skip
        report = json.loads((compare_out / "compare.json").read_text())
        result["compare"] = {
            "command": f"kerascv-tl compare {RECIPE} --backbones {COMPARED} --allow-random",
            "wall_s": wall,
            "table": (compare_out / "compare.md").read_text(),
            "report": report,
        }
        print(f"compare: {wall:.1f} s")
        print(result["compare"]["table"])
    write_result("cv_compare", result)


if __name__ == "__main__":
    main()
