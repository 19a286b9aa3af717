"""Training throughput: float32 vs mixed_bfloat16, XLA on vs off, for MobileNetV2 and ResNet50 classifiers.

Random weights, one in-memory batch (no input pipeline), the recipes' own compile helper
(`compile_classifier`, Adam, categorical cross-entropy). For each network the four variants are built
and warmed up first (the first step traces, and with XLA compiles; that time is reported separately),
then run in turns, one untimed round and `--repeats` timed rounds each, so that every variant sees the same
machine state; a round is as many training steps as fit in `--round-seconds` (at least one: an XLA step of
MobileNetV2 takes seconds on a CPU); images/s is the median over the rounds.

    python benchmarks/precision_jit.py [--image-size 96] [--batch-size 16] [--round-seconds 1.0] [--repeats 3]

Prints a table and writes benchmarks/results/precision_jit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerascv_tl.config import load_config  # noqa: E402
from kerascv_tl.precision import has_accelerator, precision_scope  # noqa: E402
from kerascv_tl.tasks import classifier  # noqa: E402
from kerascv_tl.tasks.classification import compile_classifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("mobilenet_v2", "resnet50")
VARIANTS = [("float32", False), ("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True)]
NUM_CLASSES = 10


def _cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return ""
    return " ".join(f for f in flags.split() if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16"))


def measure(network: str, args, train_config) -> list[dict]:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3)).astype("float32"))
    y = tf.constant(keras.utils.to_categorical(rng.integers(0, NUM_CLASSES, args.batch_size), NUM_CLASSES))
    models, rows = [], []
    for precision, jit in VARIANTS:
        keras.utils.set_random_seed(0)
        with precision_scope(precision):
            model = classifier(network, NUM_CLASSES, weights="none", image_size=args.image_size)
        compile_classifier(model, train_config, 1e-3, NUM_CLASSES, jit_compile=jit)
        # Optimizer variables made up front: created inside the first step, they make TensorFlow trace it 3 times.
        model.optimizer.build(model.trainable_variables)
        started = time.perf_counter()
        loss = model.train_on_batch(x, y, return_dict=True)["loss"]  # traces (with XLA: compiles) the step
        first_step = time.perf_counter() - started
        models.append(model)
        rows.append(
            {
                "network": network,
                "precision": precision,
                "jit_compile": jit,
                "first_step_s": round(first_step, 2),
                "first_loss_finite": bool(np.isfinite(loss)),
                "images_per_s_rounds": [],
            }
        )
        print(f"  {network} {precision} jit={jit}: first step {first_step:.1f} s", flush=True)
    # Round 0 is not counted: in the first measurements each non-XLA variant's first round, after the other
    # variants had been built, ran 7-27x slower than its later rounds.
    for round_ in range(args.repeats + 1):
        for model, row in zip(models, rows):
            started, steps = time.perf_counter(), 0
            while steps == 0 or time.perf_counter() - started < args.round_seconds:
                model.train_on_batch(x, y)
                steps += 1
            if round_ > 0:
                row["images_per_s_rounds"].append(round(steps * args.batch_size / (time.perf_counter() - started), 2))
    for row in rows:
        row["images_per_s"] = round(statistics.median(row["images_per_s_rounds"]), 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--round-seconds", type=float, default=1.0, help="length of a timed round (at least one step)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per variant (median reported)")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "precision_jit.json"))
    args = parser.parse_args()
    train_config = load_config(None).train  # adam, no label smoothing: what the recipes compile with
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows = []
    for network in args.networks.split(","):
        print(f"{network}: building and warming up 4 variants", flush=True)
        rows += measure(network, args, train_config)
    total = time.perf_counter() - started

    print(
        f"\ntraining images/s, batch {args.batch_size}, {args.image_size} px, median of {args.repeats} rounds of "
        f">= {args.round_seconds} s (first step = trace + compile); 1-min load average {load_before:.2f} -> "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(f"{'network':<14}{'precision':<16}{'jit':<7}{'images/s':>10}{'vs f32 no-jit':>15}{'first step s':>14}")
    for network in args.networks.split(","):
        base = next(
            r["images_per_s"]
            for r in rows
            if r["network"] == network and r["precision"] == "float32" and not r["jit_compile"]
        )
        for r in (r for r in rows if r["network"] == network):
            r["speedup_vs_float32_no_jit"] = round(r["images_per_s"] / base, 2)
            print(
                f"{network:<14}{r['precision']:<16}{str(r['jit_compile']):<7}{r['images_per_s']:>10.1f}"
                f"{r['speedup_vs_float32_no_jit']:>14.2f}x{r['first_step_s']:>14.1f}"
            )
    print(f"total {total:.0f} s")

    result = {
        "benchmark": "precision_jit",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores ({_cpu_flags()}), TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, {'accelerator' if has_accelerator() else 'CPU only'}",
        "setup": {
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "round_seconds": args.round_seconds,
            "rounds": args.repeats,
            "weights": "random",
            "optimizer": "adam",
            "data": "one in-memory batch",
        },
        # 1-minute load averages: other processes on the machine make every figure lower
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "results": rows,
        "total_wall_s": round(total, 1),
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
