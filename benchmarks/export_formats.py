"""Export formats side by side: size, export time, batch-1 latency and agreement with the Keras model, per task.

For each task's trained run (classification: the flowers_fine_tune recipe as published; detection and
segmentation: the pennfudan recipes trained for 1 + 1 epochs, since size and latency do not depend on training,
so their agreement figures come from a briefly trained model) every format is exported from the run folder
(`export_run_formats`): the SavedModel (TF Serving version folder, encoded bytes in), LiteRT float32, float16,
dynamic-range and full-integer int8, and ONNX (both take uint8 pixels already prepared to the model's input).

Figures per format:
  size MB       the artefact in 10^6 bytes (SavedModel: the whole version folder; LiteRT / ONNX: the file, not the
                sidecar card)
  export s      wall time of `export_run_formats(run, [format])` in this process (tracing and conversion; int8:
                calibration on the run's training images too)
  network ms    batch 1, the network alone on one prepared uint8 image: LiteRT / ONNX `predictor.serving.runtime
                (pixels)`; SavedModel: the same network function written by this benchmark as a SavedModel of its
                own with one endpoint (pixels -> raw outputs), loaded with tf.saved_model.load
  images ms     SavedModel only: its `serving_images` signature on that prepared uint8 image (the graph's
                prepare, which is then a no-op resize, network and finish: top-k, NMS, class maps)
  bytes ms      SavedModel only: `serving_default` from the JPEG bytes to numpy outputs (decode, prepare,
                network, finish in the graph)
  predict ms    every format: `load_predictor(artefact, num_threads=2).predict([jpeg bytes])`, the end-to-end
                Python path (LiteRT / ONNX: decode, prepare and finish run eagerly in TensorFlow around the
                runtime), so the figures compare across formats
  agreement     `verify_export`: the artefact against the run's Keras model on its validation images
                (classification: all 200 of flowers5/val; detection and segmentation: the first 20 of the
                pennfudan validation split)

Threads: LiteRT (XNNPACK) and ONNX Runtime get num_threads=2; TensorFlow's intra- and inter-op pools are set to
2 at start-up, before any op runs (checked), so the SavedModel, the eager pre- and post-processing and the
Keras reference all run on 2 threads. Latencies are medians of `--repeats` calls after 5 warm-up calls each; the
calls of one task alternate between formats, so load from other processes falls on all of them alike (the load
average is recorded). The JPEG is the first validation image (pennfudan's PNG re-encoded as JPEG, quality 90).

Run folders are reused from `--runs` (default runs/bench_export_formats/, git-ignored); a missing one is trained
there first with `kerascv-tl train` in a child process. Exports go to a temporary folder.

    python benchmarks/export_formats.py [--runs DIR] [--tasks classification,detection,segmentation]
        [--formats savedmodel,litert_float32,litert_float16,litert_dynamic,litert_int8,onnx] [--repeats 30]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import ROOT, alternate, assets, median, write_result

THREADS = 2
WARMUPS = 5
# TensorFlow's thread pools are fixed when its context starts: set them before anything runs an op.
tf.config.threading.set_intra_op_parallelism_threads(THREADS)
tf.config.threading.set_inter_op_parallelism_threads(THREADS)

from PIL import Image  # noqa: E402

from kerascv_tl.config import load_config  # noqa: E402
from kerascv_tl.data.decode import decode_image  # noqa: E402
from kerascv_tl.export.run_export import ExportedRun, export_run_formats  # noqa: E402
from kerascv_tl.export.steps import pixels_to_uint8  # noqa: E402
from kerascv_tl.export.verify import verify_export  # noqa: E402
from kerascv_tl.predict import load_predictor  # noqa: E402

# task -> (recipe, --set overrides, validation images verify_export reads)
TASKS = {
    "classification": ("flowers_fine_tune", [], 200),
    "detection": ("pennfudan_detection", ["train.head_epochs=1", "train.epochs=1"], 20),
    "segmentation": ("pennfudan_segmentation", ["train.head_epochs=1", "train.epochs=1"], 20),
}
# name -> (export_run_formats format, quantize)
FORMATS = {
    "savedmodel": ("savedmodel", None),
    "litert_float32": ("litert", "none"),
    "litert_float16": ("litert", "float16"),
    "litert_dynamic": ("litert", "dynamic"),
    "litert_int8": ("litert", "int8"),
    "onnx": ("onnx", None),
}
COLUMNS = {
    "size_mb": "artefact size, 10^6 bytes (SavedModel: version folder; LiteRT/ONNX: the file)",
    "export_s": "export_run_formats(run, [format]) wall time in this process",
    "network_ms": "batch 1, network only on one prepared uint8 image: LiteRT/ONNX predictor.serving.runtime(pixels); "
    "SavedModel: the same network function saved by this benchmark as a one-endpoint SavedModel",
    "serving_images_ms": "SavedModel only: serving_images on that prepared uint8 image (prepare, network, finish)",
    "serving_default_ms": "SavedModel only: serving_default, JPEG bytes -> numpy outputs",
    "predict_ms": "load_predictor(artefact, num_threads=2).predict([jpeg bytes]), end to end, every format",
}


def ensure_run(task: str, runs: Path) -> dict:
    """The task's run folder under `runs`, trained there (child process) when it is not a finished run."""
    recipe, overrides, _ = TASKS[task]
    folder = runs / recipe
    info = {"recipe": recipe, "folder": str(folder), "trained_now": False}
    if not all((folder / name).is_file() for name in ("model.keras", "metrics.json", "model_card.json")):
        command = [sys.executable, "-m", "kerascv_tl.cli", "train", recipe, "--output", str(folder), "--overwrite"]
        cache = [f"train.feature_cache_dir={runs / 'feature_cache'}"] if task == "classification" else []
        for override in [*overrides, *cache]:
            command += ["--set", override]
        print(f"training {recipe} into {folder} ({' '.join(overrides) or 'as published'})", flush=True)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{recipe} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
        info.update(trained_now=True, train_wall_s=round(time.perf_counter() - started, 1))
    return info


def run_summary(task: str, run: ExportedRun, info: dict) -> dict:
    """The run's epochs, whether they are fewer than its recipe publishes, and its validation figures."""
    train, published = run.config.train, load_config(TASKS[task][0]).train
    metrics = json.loads((run.root / "metrics.json").read_text())
    shown = {k: round(float(v), 4) for k, v in metrics.items() if isinstance(v, (int, float)) and "loss" not in k}
    brief = train.head_epochs < published.head_epochs or train.epochs < published.epochs
    return {
        **info,
        "head_epochs": train.head_epochs,
        "epochs": train.epochs,
        "briefly_trained": brief,
        "validation_metrics": shown,
    }


def one_jpeg(run: ExportedRun) -> tuple[bytes, dict]:
    """The first validation image as JPEG bytes (re-encoded at quality 90 when it is not a JPEG)."""
    path = Path(run.image_paths("val")[0])
    data = path.read_bytes()
    image = Image.open(io.BytesIO(data))
    if image.format != "JPEG":
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
    return data, {"file": path.name, "width": image.width, "height": image.height, "jpeg_bytes": len(data)}


def size_mb(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return round(total / 1e6, 2)


def network_savedmodel(run: ExportedRun, size: int, folder: Path):
    """The task's network alone (uint8 pixels [1, S, S, 3] -> raw outputs) as a SavedModel, loaded back."""
    _, network = run.task.export_steps(run.model, run.class_names, run.config, run.card)
    archive = keras.export.ExportArchive()
    archive.track(run.model)
    archive.add_endpoint(
        "network",
        lambda pixels: network(tf.cast(pixels, tf.float32)),
        input_signature=[tf.TensorSpec([1, size, size, 3], tf.uint8, name="pixels")],
    )
    archive.write_out(str(folder), verbose=False)
    return tf.saved_model.load(str(folder))  # kept by the caller: its functions need its variables alive


def latency_calls(name: str, path: Path, run: ExportedRun, jpeg: bytes, work: Path) -> dict:
    """{column: a zero-argument call} for one artefact (see COLUMNS)."""
    predictor = load_predictor(path, num_threads=THREADS)
    steps, _ = run.task.export_steps(run.model, run.class_names, run.config, run.card)
    pixels = pixels_to_uint8(steps.prepare(decode_image(tf.constant(jpeg)))["pixels"]).numpy()[None]
    calls = {"predict_ms": lambda: predictor.predict([jpeg])}
    if name == "savedmodel":
        images = predictor.serving.loaded.signatures["serving_images"]
        pixel_tensor = tf.constant(pixels)
        network = network_savedmodel(run, pixels.shape[1], work / "network_only")
        calls["network_ms"] = lambda: {k: v.numpy() for k, v in network.network(pixel_tensor).items()}
        calls["serving_images_ms"] = lambda: {k: v.numpy() for k, v in images(images=pixel_tensor).items()}
        calls["serving_default_ms"] = lambda: predictor.serving([jpeg])
    else:
        calls["network_ms"] = lambda: predictor.serving.runtime(pixels)
    return calls


def time_alternating(calls: dict, repeats: int) -> dict:
    """{key: median ms}: each call warmed up, then the calls in turn, `repeats` rounds."""
    times = alternate(calls, repeats, WARMUPS)
    return {key: round(median(values) * 1000, 2) for key, values in times.items()}


def export_one(run: ExportedRun, name: str, work: Path, max_images: int) -> tuple[Path, dict]:
    fmt, quantize = FORMATS[name]
    started = time.perf_counter()
    path = export_run_formats(run, [fmt], work / "model", quantize=quantize)[fmt]
    export_s = round(time.perf_counter() - started, 1)
    figures = verify_export(run, path, max_images=max_images)
    agreement = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in figures.items() if k != "artefact"}
    return path, {"file": path.name, "size_mb": size_mb(path), "export_s": export_s, "agreement": agreement}


def measure(task: str, runs: Path, formats: list[str], repeats: int, work: Path) -> dict:
    """Exports, verifies and times every format of one task, then prints its table."""
    info = ensure_run(task, runs)
    run = ExportedRun.load(info["folder"])
    jpeg, image = one_jpeg(run)
    max_images = TASKS[task][2]
    results: dict[str, dict] = {}
    calls: dict[tuple[str, str], object] = {}
    for name in formats:
        if FORMATS[name][1] == "int8" and run.task.litert_int8_refusal:
            results[name] = {"not_offered": run.task.litert_int8_refusal}
            continue
        print(f"  {task}: exporting and verifying {name}", flush=True)
        try:
            path, results[name] = export_one(run, name, work / task, max_images)
            for key, call in latency_calls(name, path, run, jpeg, work / task / name).items():
                calls[(name, key)] = call
        except Exception as error:  # noqa: BLE001 - recorded and reported: one format failing is a figure too
            results[name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
            print(f"  {task}: {name} FAILED: {results[name]['error']}", flush=True)
    load_before = os.getloadavg()[0]
    medians = time_alternating(calls, repeats)
    load_after = os.getloadavg()[0]
    for (name, key), value in medians.items():
        results[name].setdefault("latency_ms", {})[key] = value
    result = {
        "run": run_summary(task, run, info),
        "image": image,
        "verify_images": max_images,
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "formats": results,
    }
    print_table(task, result)
    return result


def agreement_text(figures: dict) -> str:
    short = {
        "top1_agreement": "top1",
        "max_probability_difference": "max|dp|",
        "accuracy_reference": "acc keras",
        "accuracy_export": "acc export",
        "boxes_matched": "boxes matched",
        "same_box_count": "same count",
        "max_score_difference": "max|dscore|",
        "pixel_agreement": "pixels",
    }
    return ", ".join(f"{label} {figures[key]:.4f}" for key, label in short.items() if key in figures)


def cell(ms: dict, key: str, width: int) -> str:
    return f"{ms[key]:{width}.2f}" if key in ms else f"{'-':>{width}s}"


def print_table(task: str, result: dict) -> None:
    run = result["run"]
    trained = "BRIEFLY TRAINED: agreement from a barely trained model" if run["briefly_trained"] else "as published"
    print(
        f"\n{task}: {run['recipe']} ({run['head_epochs']} head + {run['epochs']} epochs, {trained}); "
        f"latency on {result['image']['file']} ({result['image']['width']}x{result['image']['height']}), batch 1, "
        f"{THREADS} threads; agreement on {result['verify_images']} val images; load avg "
        f"{result['load_average_1min'][0]} -> {result['load_average_1min'][1]}"
    )
    head = f"{'format':15s} {'MB':>7s} {'export s':>8s} {'network ms':>10s} {'images ms':>9s} {'bytes ms':>8s}"
    print(f"{head} {'predict ms':>10s}  agreement (vs Keras)")
    for name, r in result["formats"].items():
        if "error" in r or "not_offered" in r:
            print(f"{name:15s} {'FAILED: ' + r['error'] if 'error' in r else 'not offered: ' + r['not_offered']}")
            continue
        ms = r.get("latency_ms", {})
        print(
            f"{name:15s} {r['size_mb']:7.2f} {r['export_s']:8.1f} {cell(ms, 'network_ms', 10)} "
            f"{cell(ms, 'serving_images_ms', 9)} {cell(ms, 'serving_default_ms', 8)} {cell(ms, 'predict_ms', 10)}  "
            f"{agreement_text(r['agreement'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_export_formats")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    assert tf.config.threading.get_intra_op_parallelism_threads() == THREADS  # set before TensorFlow started
    os.environ.setdefault("KERASCV_TL_ASSETS", str(assets()))  # the recipes' data paths, here and in training
    formats = args.formats.split(",")
    unknown = sorted(set(formats) - set(FORMATS)) + sorted(set(args.tasks.split(",")) - set(TASKS))
    if unknown:
        parser.error(f"unknown {', '.join(unknown)}; formats: {', '.join(FORMATS)}; tasks: {', '.join(TASKS)}")
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for task in args.tasks.split(","):
            results[task] = measure(task, args.runs.resolve(), formats, args.repeats, Path(work))
            keras.backend.clear_session()
    print(f"\ntotal {(time.perf_counter() - started) / 60:.1f} min")
    write_result(
        "export_formats",
        {
            "setup": "batch 1, one JPEG per task; classification flowers_fine_tune (MobileNetV2 224 px, as "
            "published); detection (RetinaNet) and segmentation (DeepLabV3+) on MobileNetV2 256 px, pennfudan "
            "recipes trained 1 head + 1 fine-tune epoch: their agreement figures come from a briefly trained model",
            "threads": f"{THREADS}: LiteRT and ONNX Runtime num_threads={THREADS}; TensorFlow intra/inter-op pools "
            f"set to {THREADS} before any op (SavedModel, eager prepare/finish, Keras reference)",
            "timing": f"median of {args.repeats} calls after {WARMUPS} warm-ups, formats alternating",
            "columns": COLUMNS,
            "wall_s": round(time.perf_counter() - started, 1),
            **results,
        },
    )


if __name__ == "__main__":
    main()
