"""`kerascv-tl evaluate` and `kerascv-tl export`: a finished run or an exported SavedModel."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kerascv_tl.export.run_export import export_run

__all__ = ["add_parsers", "cmd_evaluate", "cmd_export", "export_run", "print_exported"]

FORMATS = ("savedmodel", "litert", "onnx", "preset")


def add_parsers(sub, common) -> None:
    p = sub.add_parser(
        "evaluate", parents=[common], help="evaluate a run folder or an exported SavedModel on labelled data"
    )
    p.add_argument("model", help="run folder or SavedModel (base or version folder)")
    p.add_argument("--data", required=True, help="class-per-folder tree, CSV or tfds:NAME[:SPLIT]")
    p.add_argument("--output", help="report folder (default: <run>/eval_<data name> or runs/eval/...)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--explain",
        type=_count,
        default=0,
        metavar="N",
        help="classification run folders: Grad-CAM overlays of the N most confident mistakes and N correct images "
        'per class, in <report folder>/explain/ and under "explain" in its metrics.json (default 0: none)',
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", parents=[common], help="export a run's model: SavedModel for TF Serving, LiteRT, ONNX")
    p.add_argument("run", help="run folder")
    p.add_argument(
        "--format",
        nargs="+",
        choices=FORMATS,
        metavar="FORMAT",
        help="savedmodel (TF Serving: image bytes in), litert (.tflite) and/or onnx (.onnx): pixels at the model's "
        "input size in; preset: a KerasHub preset folder (detection, segmentation) (default: the run's "
        "export.formats, savedmodel)",
    )
    p.add_argument(
        "--output",
        help="model base folder (default: saved_models/<name>); SavedModel versions go inside, LiteRT files "
        "into <output>_litert/, ONNX into <output>_onnx/, the preset into <output>_preset/",
    )
    p.add_argument("--version", type=int, help="SavedModel version number (default: next free)")
    p.add_argument(
        "--quantize",
        choices=("none", "float16", "dynamic", "int8"),
        help="LiteRT weights/activations (default: the run's export.quantize, none); int8 calibrates on "
        "export.calibration_images of the run's training images",
    )
    p.add_argument("--input-dtype", choices=("uint8", "float32"), help="LiteRT/ONNX pixel input (default uint8)")
    p.add_argument("--output-dtype", choices=("float32", "uint8"), help="int8 LiteRT outputs (default float32)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="compare each export with the run's Keras model on its validation images and print the agreement",
    )
    p.add_argument("--verify-images", type=int, default=200, help="validation images --verify uses (default 200)")
    p.set_defaults(func=cmd_export)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def cmd_export(args) -> int:
    from kerascv_tl.export.run_export import ExportedRun, export_run_formats

    run = ExportedRun.load(args.run)
    written = export_run_formats(
        run, args.format, args.output, args.version, args.quantize, args.input_dtype, args.output_dtype
    )
    print_exported(written)
    if args.verify:
        from kerascv_tl.export.verify import verify_export, verify_preset

        for fmt, path in written.items():
            check = verify_preset if fmt == "preset" else verify_export
            print(verify_line(check(run, path, args.verify_images)))
    return 0


def print_exported(written: dict[str, Path]) -> None:
    for fmt, path in written.items():
        if fmt == "preset":
            family = json.loads((path / "metadata.json").read_text())["kerascv_tl"]["keras_hub_task"]
            print(f"exported KerasHub preset: {path}")
            print(f"  import kerascv_tl.tasks; keras_hub.models.{family}.from_preset({str(path)!r})")
        elif fmt == "savedmodel":
            print(f"exported SavedModel: {path}")
            print(f"  saved_model_cli show --dir {path} --all")
        else:
            kind = "LiteRT" if fmt == "litert" else "ONNX"
            print(f"exported {kind}: {path} ({path.stat().st_size / 1e6:.1f} MB; card {path.with_suffix('.json')})")


def verify_line(figures: dict) -> str:
    """`--verify`'s line for one export: its figures, fractions as percentages."""
    shown = []
    for key, value in figures.items():
        if key in ("artefact", "format", "images"):
            continue
        if key.startswith(("top1", "boxes_matched", "same_box", "pixel", "label_set", "accuracy")):
            shown.append(f"{key.replace('_', ' ')} {100 * value:.2f}%")
        elif key == "boxes_reference":
            shown.append(f"{int(value)} reference boxes")
        else:
            shown.append(f"{key.replace('_', ' ')} {value:.2g}")
    return f"verify {figures['format']} ({figures['artefact']}) on {figures['images']} validation images: " + ", ".join(
        shown
    )


def cmd_evaluate(args) -> int:
    from kerascv_tl.tasks.registry import get_task

    model_path = Path(args.model)
    data_name = Path(args.data.rstrip("/")).name.replace(":", "_") or "data"
    if (model_path / "model.keras").is_file():
        from kerascv_tl.recipes import RunFolder

        run = RunFolder(model_path)
        config = run.load_config()
        task = get_task(config.task)
        class_names = run.load_class_names()
        model = run.load_model()
        out = Path(args.output) if args.output else run.root / f"eval_{data_name}"
        source = task.read_eval_source(args.data, config, class_names)
        run_metrics = json.loads((run / "metrics.json").read_text())
        # Explanations first: a task without them refuses before the evaluation has run.
        explained = task.explain(model, source, config, out, class_names, args.explain) if args.explain else None
        metrics = task.evaluate(model, source, config, out, class_names, args.batch_size, run_metrics=run_metrics)
        if explained is not None:
            metrics = add_explanations(out, explained)
    else:
        from kerascv_tl.export import load_serving

        if args.explain:
            from kerascv_tl.data.errors import DataError

            raise DataError(
                f"{model_path}: --explain needs the Keras model: evaluate the run folder, not an exported SavedModel",
                path=model_path,
            )
        loaded, folder = load_serving(model_path)
        card = json.loads((folder / "model_card.json").read_text())
        task = get_task(card.get("task", "classification"))
        out = (
            Path(args.output)
            if args.output
            else Path("runs") / "eval" / f"{folder.parent.name}-v{folder.name}-{data_name}"
        )
        metrics = task.evaluate_saved_model(loaded, folder, card, args.data, out, args.batch_size)
    print(f"{task.evaluation_line(metrics)}; reports in {out}")
    if "explain" in metrics:
        explained = metrics["explain"]
        print(
            f"Grad-CAM overlays of {len(explained['mistakes'])} mistakes and {len(explained['correct'])} correct "
            f"images in {out / 'explain'} (grids mistakes.png, correct.png; index explain.json)"
        )
    return 0


def add_explanations(out: Path, explained: dict) -> dict:
    """The evaluation's metrics.json (in `out`) with the explanation index under "explain", written back."""
    from kerascv_tl.utils.io import atomic_write_json

    metrics = json.loads((out / "metrics.json").read_text())
    metrics["explain"] = explained
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
