"""`kerascv-tl predict` and `kerascv-tl backbones`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parsers(sub, common) -> None:
    p = sub.add_parser(
        "predict",
        parents=[common],
        help="run images through an export (SavedModel, .tflite, .onnx) or a finished run (classes, boxes or masks)",
        description="Predicts every image given: files, folders (searched recursively) and glob patterns. A bad "
        "image is named on stderr and skipped; the exit status is then 2.",
    )
    p.add_argument(
        "model", help="SavedModel (base or version folder), a .tflite or .onnx export, or a finished run folder"
    )
    p.add_argument(
        "images",
        nargs="+",
        metavar="PATH",
        help="image files, folders (every image below them) and glob patterns (quoted ones are expanded here too; "
        "** crosses folders)",
    )
    output = p.add_mutually_exclusive_group()
    output.add_argument(
        "--output",
        type=_output_file,
        help="write one row per image to FILE.csv or FILE.jsonl (the format follows the suffix) instead of printing",
    )
    output.add_argument("--json", action="store_true", help="print the JSON lines of earlier releases instead of text")
    p.add_argument(
        "--masks-dir",
        help="segmentation: where the class-id mask PNGs go (default with --output: <output stem>_masks/ beside it)",
    )
    p.add_argument("--batch-size", type=_positive, default=32, help="images per call of the model (default 32)")
    p.add_argument(
        "--top-k", type=_positive, help="classification: classes per image (default: the export's top_k, else 5)"
    )
    p.add_argument(
        "--output-dir",
        help="detection and segmentation: where annotated copies of the images go (default: predictions/ without "
        "--output, none with it)",
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "backbones", parents=[common], help="list registered backbones with parameter counts and input sizes"
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="only these backbones (default: all)")
    p.add_argument(
        "--check",
        action="store_true",
        help="build each backbone (random init, at its input size) and compare its parameter count with the "
        "declared one; exit status 1 on a mismatch",
    )
    p.set_defaults(func=cmd_backbones)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _output_file(text: str) -> Path:
    from kerascv_tl.predict.writers import check_output_path

    try:
        return check_output_path(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_predict(args) -> int:
    """Rows are printed as they come without --output; with it, they are kept (arrays dropped: masks are on disk
    by then) and the file is written once, atomically, at the end."""
    from kerascv_tl.data.paths import display_path
    from kerascv_tl.predict import expand_paths, load_predictor
    from kerascv_tl.predict.writers import FileNames, json_row, write_predictions

    images, problems = expand_paths(args.images)
    for argument, message in problems:
        print(f"error: {display_path(argument)}: {message}", file=sys.stderr)
    if not images:
        print("error: no image to predict", file=sys.stderr)
        return 2
    predictor = load_predictor(args.model)
    task, output = predictor.hooks, args.output
    top_k = predictor.top_k if args.top_k is None else args.top_k
    masks_dir = Path(args.masks_dir) if args.masks_dir else output.parent / f"{output.stem}_masks" if output else None
    annotated_dir = Path(args.output_dir) if args.output_dir else None if output else Path("predictions")
    names = FileNames()
    rows, failures = [], len(problems)
    for result in predictor.results(images, args.batch_size, top_k):
        if result.problem is not None:
            print(f"error: {result.name}: {result.problem}", file=sys.stderr)
            failures += 1
            continue
        image = images[result.index]
        row = result.row | task.prediction_files(result.row, image, names(image), masks_dir, annotated_dir)
        if output is None:
            print(task.prediction_line(row, as_json=args.json), flush=True)
        else:
            rows.append(json_row(row))
    if output is not None:
        write_predictions(output, rows, task.prediction_columns(predictor.card, top_k), task.prediction_csv)
        skipped = f"; {failures} problem(s) reported above" if failures else ""
        print(f"{len(rows)} image(s) predicted -> {output}{skipped}")
    return 2 if failures else 0


def cmd_backbones(args) -> int:
    """The declared parameter counts (nothing is built) or, with --check, declared vs built."""
    from kerascv_tl.backbones import REGISTRY

    unknown = [name for name in args.names if name not in REGISTRY]
    if unknown:
        print(f"error: unknown backbone(s) {', '.join(unknown)}; registered: {', '.join(REGISTRY)}", file=sys.stderr)
        return 2
    specs = [REGISTRY[name] for name in args.names or REGISTRY]
    built_header = f" {'built':>12}" if args.check else ""
    print(
        f"{'name':<20} {'source':<20} {'params':>12}{built_header} {'input':>7}  {'pooling':<7} {'pyramid':<9} "
        "preprocessing"
    )
    mismatches = []
    for spec in specs:
        built = ""
        if args.check:
            import keras

            count = spec.build(spec.default_image_size, None).count_params()
            keras.backend.clear_session()  # fifteen networks' graphs need not stay in memory together
            built = f" {count:>12,}"
            if count != spec.params:
                mismatches.append(f"{spec.name}: declared {spec.params:,} parameters, built {count:,}")
        pyramid = "/".join(str(s) for s in spec.pyramid_strides) or "-"
        print(
            f"{spec.name:<20} {spec.source:<20} {spec.params:>12,}{built} {spec.default_image_size:>7}  "
            f"{spec.pooling:<7} {pyramid:<9} {spec.preprocessing.source}",
            flush=True,
        )
    for line in mismatches:
        print(f"mismatch: {line} (kerascv_tl/backbones/registry.py)", file=sys.stderr)
    return 1 if mismatches else 0
