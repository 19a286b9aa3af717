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
        skip = ("command", "wall_s", "train_s", "peak_rss_gb", "commit")
        figures = ", ".join(f"{k} {v:.3f}" for k, v in run.items() if k not in skip)
        out.append(
            f"| {name} ({run.get('commit', '?')}) | `{run['command']}` | {figures} | {run['wall_s'] / 60:.1f} min "
            f"| {run['peak_rss_gb']:.2f} GB |"
        )
    return out


# export_formats.json: latency columns and agreement figures, in table order
EXPORT_MS = ("network_ms", "serving_images_ms", "serving_default_ms", "predict_ms")
AGREEMENT = {
    "top1_agreement": "top-1",
    "accuracy_reference": "acc Keras",
    "accuracy_export": "acc export",
    "max_probability_difference": "max prob diff",
    "boxes_matched": "boxes matched",
    "same_box_count": "same count",
    "max_score_difference": "max score diff",
    "pixel_agreement": "pixels",
}


def export_formats_rows() -> list[str]:
    r = load("export_formats")
    out = []
    for task in ("classification", "detection", "segmentation"):
        if not r or task not in r:
            continue
        label = task + (" (briefly trained)" if r[task]["run"]["briefly_trained"] else "")
        for name, f in r[task]["formats"].items():
            if "not_offered" in f:
                out.append(f"| {label} | {name} | not offered (see docs/deploy.md) | | | | | | |")
                continue
            if "error" in f:
                out.append(f"| {label} | {name} | failed: {f['error'][:100]} | | | | | | |")
                continue
            ms = " | ".join(f"{f['latency_ms'][k]:.1f}" if k in f.get("latency_ms", {}) else "-" for k in EXPORT_MS)
            figures = ", ".join(
                f"{short} {f['agreement'][k]:.3f}" for k, short in AGREEMENT.items() if k in f["agreement"]
            )
            out.append(f"| {label} | {name} | {f['size_mb']:.1f} | {f['export_s']:.0f} | {ms} | {figures} |")
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
    if r := load("imbalance"):
        means = "; ".join(
            f"{name}: macro F1 {v['mean']['macro_f1']:.3f}, balanced accuracy {v['mean']['balanced_accuracy']:.3f}"
            for name, v in r["settings"].items()
        )
        counts = "/".join(str(c) for c in r["counts"].values())
        out.append(f"| imbalance: flowers5 cut to {counts} training images per class, mean of 3 seeds | {means} |")
    if r := load("cv_compare"):
        cv = r["cv"]
        accuracy = cv["metrics"]["accuracy"]
        out.append(
            f"| `{cv['cv_command']}` vs one `train` | {cv['cv_wall_s']:.0f} s vs {cv['train_wall_s']:.0f} s "
            f"({cv['ratio']}x); accuracy {accuracy['mean']:.4f} ± {accuracy['std']:.4f} |"
        )
        rows_ = "; ".join(
            f"{row['name']}{' (random)' if row.get('random') else ''} {row['accuracy']:.3f}"
            for row in r["compare"]["report"]["backbones"]
            if row.get("accuracy") is not None
        )
        out.append(f"| `{r['compare']['command']}` (probe accuracy) | {rows_} |")
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
    if export := export_formats_rows():
        lines += [
            "## Export formats: size, export time, batch-1 latency (2 threads), agreement with the Keras model",
            "",
            "network: the network alone on one prepared uint8 image (LiteRT / ONNX runtime call; SavedModel: the "
            "same network as a one-endpoint SavedModel); images / bytes: the SavedModel's `serving_images` on that "
            "image / `serving_default` from the JPEG bytes; predict: `load_predictor(...).predict([jpeg])` end to "
            "end, every format. Medians, ms.",
            "",
            "| task | format | MB | export s | network ms | images ms | bytes ms | predict ms | agreement |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            *export,
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
