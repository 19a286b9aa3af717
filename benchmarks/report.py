"""benchmarks/results/*.json -> benchmarks/results/RESULTS.md, the table the README quotes.

python benchmarks/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def verdict(value: float, goal: str) -> str:
    op, limit = goal.split()
    met = value <= float(limit) if op == "<=" else value >= float(limit)
    return "met" if met else "**not met**"


def rows() -> list[str]:
    out = []
    for name in ("input_pipeline", "input_pipeline_cached"):
        if r := load(name):
            out.append(
                f"| 1. input pipeline: step time, real JPEG pipeline / batch in memory ({r['setup']}) "
                f"| {r['pipeline_step_s'] * 1000:.0f} ms / {r['memory_step_s'] * 1000:.0f} ms "
                f"| **{r['ratio']:.3f}** | <= 1.05 | {verdict(r['ratio'], '<= 1.05')} |"
            )
    if r := load("framework_overhead"):
        out.append(
            f"| 2. framework overhead: recipe `fit_phase` / bare `model.fit` ({r['setup']}) "
            f"| {r['recipe_s']:.1f} s / {r['bare_fit_s']:.1f} s | **{r['ratio']:.3f}** | <= 1.03 "
            f"| {verdict(r['ratio'], '<= 1.03')} |"
        )
    if r := load("cached_features"):
        out.append(
            f"| 3. cached-feature linear probe, {r['head_epochs']} head epochs: recompute / cached ({r['data']}, "
            f"{r['image_size']} px; val accuracy {r['recompute_val_accuracy']:.3f} vs "
            f"{r['cached_val_accuracy']:.3f}) | {r['recompute_wall_s']:.1f} s / {r['cached_wall_s']:.1f} s "
            f"| **{r['speedup']:.2f}x** | >= 8 | {verdict(r['speedup'], '>= 8')} |"
        )
    if r := load("serving"):
        for task in ("classification", "detection", "segmentation"):
            if task in r:
                t = r[task]
                out.append(
                    f"| 4. serving {task}, batch {t['batch']}: SavedModel from JPEG bytes / `model.predict` "
                    f"on decoded tensors | {t['savedmodel_jpeg_bytes_s'] * 1000:.0f} ms "
                    f"({t['savedmodel_images_per_s']:.0f} img/s) / {t['keras_predict_decoded_s'] * 1000:.0f} ms "
                    f"({t['keras_predict_images_per_s']:.0f} img/s); traced `predict_step` "
                    f"{t['traced_predict_step_decoded_s'] * 1000:.0f} ms (SavedModel / it: "
                    f"{t['latency_ratio_vs_traced_predict_step']:.3f}) | **{t['latency_ratio']:.3f}** | <= 1.15 "
                    f"| {verdict(t['latency_ratio'], '<= 1.15')} |"
                )
    return out


def real_data_rows() -> list[str]:
    r = load("real_data")
    if not r:
        return []
    out = []
    for name, run in r["runs"].items():
        figures = ", ".join(f"{k} {v:.3f}" for k, v in run.items() if k not in ("command", "wall_s", "peak_rss_gb"))
        out.append(
            f"| {name} | `{run['command']}` | {figures} | {run['wall_s'] / 60:.1f} min | {run['peak_rss_gb']:.2f} GB |"
        )
    return out


def other_rows() -> list[str]:
    out = []
    if r := load("distribute"):
        speeds = ", ".join(f"{k} {v} img/s" for k, v in r["images_per_s"].items())
        out.append(
            f"| training, one device vs `mirrored` on 2 logical CPU devices ({r['setup']}) | {speeds} "
            f"(ratio {r['mirrored_over_one_device']}); GPU: {r.get('gpu', '-')} |"
        )
    if r := load("precision_jit"):
        speeds = "; ".join(
            f"{x['network']} {x['precision']}{' XLA' if x['jit_compile'] else ''} {x['images_per_s']}"
            for x in r["results"]
        )
        setup = r["setup"]
        out.append(
            f"| training images/s by precision and XLA ({setup['image_size']} px, batch {setup['batch_size']}, "
            f"{setup['weights']} weights, median of {setup['rounds']} rounds) | {speeds} |"
        )
    return out


def main() -> None:
    machines = sorted({json.loads(p.read_text()).get("machine", "?") for p in RESULTS.glob("*.json")})
    lines = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/report.py` from `benchmarks/results/*.json` "
        "(`make bench`). Each ratio is measured side by side in one process; medians over repeats.",
        "",
        f"Machine: {'; '.join(machines)}",
        "",
        "| figure | measured | ratio | goal | |",
        "| --- | --- | ---: | --- | --- |",
        *rows(),
        "",
    ]
    if real := real_data_rows():
        lines += [
            "## Real data: quality and cost",
            "",
            "| run | command | validation figures | wall time | peak RSS |",
            "| --- | --- | --- | ---: | ---: |",
            *real,
            "",
        ]
    if other := other_rows():
        lines += ["## Other benchmarks", "", "| benchmark | figures |", "| --- | --- |", *other, ""]
    path = RESULTS / "RESULTS.md"
    path.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
