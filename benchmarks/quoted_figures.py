"""Every measured figure README.md and the docs quote, tied to the benchmark result it comes from.

`make bench` re-measures benchmarks/results/*.json and ends with this script, which fails (exit status 1) when a
quoted figure and its fresh measurement differ by more than that figure's spread, or when a document no longer
holds the quoted text: a README figure cannot silently go stale. tests/test_quoted_figures.py checks the same
against the committed results, so a README edit and its results stay together.

Spreads are what we measured between runs of the same command on these 2-core machines: quality figures of one
seed move little (classification accuracy 0 to 0.005 between runs, detection map_50 about 0.02, segmentation IoU
about 0.005), wall times a lot (the same command took 2x as long on another of these machines), so times are
checked within 40% and only flag a figure that is plainly out of date.

    python benchmarks/quoted_figures.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

TIME_SPREAD = 0.40  # relative


@dataclass(frozen=True)
class Quote:
    """`shown` (the figure as the document writes it) appears in `document` inside `context`, and stands for
    `quoted`; the measurement is `key` (dotted) of benchmarks/results/`result`.json."""

    document: str
    context: str
    shown: str
    quoted: float
    result: str
    key: str
    spread: float  # absolute, or relative to `quoted` when `relative`
    relative: bool = False

    def measured(self, results: Path = RESULTS) -> float:
        value = json.loads((results / f"{self.result}.json").read_text())
        for part in _key_parts(self.key):
            value = _index(value, part)
        return float(value)

    def problem(self, results: Path = RESULTS) -> str | None:
        """None when the document holds the figure and the measurement agrees; else what is wrong."""
        # Compared with runs of whitespace folded: a reflowed paragraph still holds its figures.
        text = " ".join((ROOT / self.document).read_text(encoding="utf-8").split())
        if " ".join(self.context.split()) not in text:
            return f"{self.document}: no longer holds {self.context!r}"
        if self.shown not in self.context:
            return f"{self.document}: {self.context!r} does not show the figure {self.shown!r}"
        try:
            measured = self.measured(results)
        except (FileNotFoundError, KeyError) as e:
            return f"{self.result}.json has no {self.key} ({e})"
        allowed = self.spread * abs(self.quoted) if self.relative else self.spread
        if abs(measured - self.quoted) > allowed:
            return (
                f"{self.document} quotes {self.shown} ({self.quoted:g}) but {self.result}.json {self.key} measured "
                f"{measured:g}: more than the spread {allowed:g} apart"
            )
        return None


def _key_parts(key: str) -> list[str]:
    # Keys may hold dots themselves ("per_class_iou.person" in real_data.json): "runs/x/per_class_iou.person".
    return key.split("/")


def _time(document: str, context: str, shown: str, seconds: float, result: str, key: str) -> Quote:
    return Quote(document, context, shown, seconds, result, key, TIME_SPREAD, relative=True)


README = "README.md"
BENCH_DOC = "docs/benchmarks.md"

QUOTES: list[Quote] = [
    # The recipes (benchmarks/real_data.py)
    Quote(README, "| **0.910** (top-5 1.000) | 19.5 s from a cold cache", "0.910", 0.910, "real_data",
          "runs/flowers_feature_extraction/accuracy", 0.01),
    _time(README, "| **0.910** (top-5 1.000) | 19.5 s from a cold cache", "19.5 s", 19.5, "real_data",
          "runs/flowers_feature_extraction/wall_s"),
    Quote(README, "| **0.940** (top-5 1.000) | 1 min 40 s from a cold cache", "0.940", 0.940, "real_data",
          "runs/flowers_fine_tune/accuracy", 0.01),
    _time(README, "| **0.940** (top-5 1.000) | 1 min 40 s from a cold cache", "1 min 40 s", 100, "real_data",
          "runs/flowers_fine_tune/wall_s"),
    Quote(README, "**map_50 0.893**, map_50_95 0.503, map_75 0.513, ar_100 0.574 (34 images, commit 97f74c1", "0.893",
          0.893, "real_data", "runs/pennfudan_detection/map_50", 0.06),
    Quote(README, "**map_50 0.893**, map_50_95 0.503, map_75 0.513, ar_100 0.574 (34 images, commit 97f74c1", "0.503",
          0.503, "real_data", "runs/pennfudan_detection/map_50_95", 0.04),
    _time(README, "| 10 min 42 s in all (10 min 11 s of training); peak RSS 2.9 GB |", "10 min 42 s", 642, "real_data",
          "runs/pennfudan_detection/wall_s"),
    Quote(README, "**person IoU 0.801**, miou 0.879 (34 images, original resolution, commit 96d17ec", "0.801", 0.801,
          "real_data", "runs/pennfudan_segmentation/per_class_iou.person", 0.015),
    _time(README, "| 12 min 17 s in all (12 min 1 s of training); peak RSS 5.6 GB |", "12 min 17 s", 737, "real_data",
          "runs/pennfudan_segmentation/wall_s"),
    # Class imbalance (benchmarks/imbalance.py)
    Quote(README, "| none (the recipe as committed) | 0.670 | 0.692 | 0.308 |", "0.670", 0.670, "imbalance",
          "settings/none/mean/macro_f1", 0.01),
    Quote(README, "| `--set train.class_weight=balanced` | **0.769** | **0.770** | **0.608** |", "0.769", 0.769,
          "imbalance", "settings/class_weight/mean/macro_f1", 0.01),
    Quote(README, "| `--set data.sampling=balanced` | 0.754 | 0.758 | 0.525 |", "0.754", 0.754, "imbalance",
          "settings/sampling/mean/macro_f1", 0.01),
    # Cross-validation and backbone comparison (benchmarks/cv_compare.py)
    Quote(README, "accuracy **0.901 ± 0.022**", "0.901", 0.901, "cv_compare", "cv/metrics/accuracy/mean", 0.01),
    _time(README, "took 38.7 s against 19.4 s", "38.7 s", 38.7, "cv_compare", "cv/cv_wall_s"),
    _time(README, "took 38.7 s against 19.4 s", "19.4 s", 19.4, "cv_compare", "cv/train_wall_s"),
    Quote(README, "MobileNetV2 probes at **0.880** accuracy", "0.880", 0.880, "cv_compare",
          "compare/report/backbones/0/accuracy", 0.01),
    # Speed ratios (docs/benchmarks.md)
    Quote(BENCH_DOC, "**1.065** (466 vs 438 ms", "1.065", 1.065, "input_pipeline", "ratio", 0.08),
    Quote(BENCH_DOC, "**1.072** (498 vs 465 ms", "1.072", 1.072, "input_pipeline_cached", "ratio", 0.08),
    Quote(BENCH_DOC, "**6.96x** (117.0 vs 16.8 s", "6.96", 6.96, "cached_features", "speedup", 2.5),
]  # fmt: skip


def _index(value, part: str):
    return value[int(part)] if isinstance(value, list) else value[part]


def check(results: Path = RESULTS) -> list[str]:
    """Every quote's problem (empty: all hold)."""
    return [p for quote in QUOTES if (p := quote.problem(results)) is not None]


def main() -> int:
    problems = check()
    for quote in QUOTES:
        problem = quote.problem()
        shown = "ok" if problem is None else "DISAGREES"
        measured = "-" if problem and "has no" in problem else f"{quote.measured():g}"
        print(f"{shown:9s} {quote.document}: {quote.shown} (measured {measured}; {quote.result} {quote.key})")
    if problems:
        print(f"\n{len(problems)} quoted figure(s) disagree with their measurement:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"all {len(QUOTES)} quoted figures agree with benchmarks/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
