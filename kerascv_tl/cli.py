"""`kerascv-tl`: train | evaluate | export | predict | backbones | demo.

The command-line contract (recipes and docs depend on it):
  kerascv-tl train CONFIG [--set key=value ...] [--output RUN_DIR] [--overwrite] [--strategy NAME]
  kerascv-tl check-data CONFIG [--set key=value ...] [--json]
  kerascv-tl evaluate RUN_DIR|SAVED_MODEL --data PATH [--output DIR]
  kerascv-tl export RUN_DIR [--output DIR]
  kerascv-tl predict SAVED_MODEL IMAGE... [--top-k K]
  kerascv-tl backbones
  kerascv-tl demo
Known problems (bad config, bad data, missing weights, a finished run, an unsafe model file) end with one
`error:` line and exit status 2, not a traceback. `check-data` exits 1 when it found problems.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

log = logging.getLogger("kerascv_tl")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # e.g. "Assets written to <temporary folder>"
    from kerascv_tl.backbones import WeightsError
    from kerascv_tl.config import ConfigError
    from kerascv_tl.data.errors import DataError
    from kerascv_tl.recipes import RunExistsError
    from kerascv_tl.utils.model_files import UnsafeModelError

    try:
        return args.func(args) or 0
    except (ConfigError, DataError, WeightsError, RunExistsError, UnsafeModelError, FileNotFoundError,
            FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    from kerascv_tl.config import STRATEGIES  # no TensorFlow import

    parser = argparse.ArgumentParser(prog="kerascv-tl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="run a recipe config")
    p.add_argument("config", help="recipe YAML, e.g. recipes/flowers_fine_tune.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--output", help="run folder (default: <output_dir>/<config name>)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing run in the folder")
    p.add_argument("--export", action="store_true", help="also export a SavedModel when training ends")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="tf.distribute strategy, same as --set strategy=NAME (default: the config's, auto)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("check-data", help="check a recipe's dataset: every bad file and why, then a summary")
    p.add_argument("config", help="recipe YAML")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set data.train=other/folder (repeatable)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_check_data)

    p = sub.add_parser("evaluate", help="evaluate a run folder or an exported SavedModel on labelled data")
    p.add_argument("model", help="run folder or SavedModel (base or version folder)")
    p.add_argument("--data", required=True, help="class-per-folder tree, CSV or tfds:NAME[:SPLIT]")
    p.add_argument("--output", help="report folder (default: <run>/eval_<data name> or runs/eval/...)")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="export a run's model as a SavedModel for TF Serving")
    p.add_argument("run", help="run folder")
    p.add_argument("--output", help="model base folder; versions go inside (default: saved_models/<name>)")
    p.add_argument("--version", type=int, help="version number (default: next free)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="top-k classes of images through an exported SavedModel")
    p.add_argument("model", help="SavedModel (base or version folder)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    p.add_argument("--output-dir", default="predictions", help="detection and segmentation: where the annotated copies go")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("backbones", help="list registered backbones with parameter counts and input sizes")
    p.set_defaults(func=cmd_backbones)

    p = sub.add_parser("demo", help="offline end-to-end demo on the synthetic shapes dataset")
    p.add_argument("--config", default="recipes/shapes_fine_tune.yaml")
    p.set_defaults(func=cmd_demo)
    return parser


def cmd_train(args) -> int:
    from kerascv_tl.config import load_config
    from kerascv_tl.recipes import train

    overrides = args.overrides + ([f"strategy={args.strategy}"] if args.strategy else [])
    config = load_config(args.config, overrides)
    run, metrics = train(config, output=args.output, overwrite=args.overwrite, config_path=args.config)
    print(f"run folder: {run.root}")
    if config.task == "detection":
        print(f"validation map_50_95: {metrics['map_50_95']:.4f}  map_50: {metrics['map_50']:.4f}  "
              f"map_75: {metrics['map_75']:.4f}  ar_100: {metrics['ar_100']:.4f}")
    elif config.task == "segmentation":
        print(_segmentation_line(metrics))
    else:
        print(f"validation accuracy: {metrics['accuracy']:.4f}" + (
            f"  top-5: {metrics['top5_accuracy']:.4f}" if "top5_accuracy" in metrics else ""))
    from kerascv_tl.distribute import is_chief

    if args.export and is_chief():  # other workers of a multi-worker run keep no run folder
        print(f"exported: {export_run(run.root)}")
    return 0


def cmd_check_data(args) -> int:
    """Prints every problem (file: reason [what training would do]) and a summary; 1 when there are problems."""
    from kerascv_tl.config import load_config
    from kerascv_tl.data.check import check_data

    config = load_config(args.config, args.overrides)
    check = check_data(config)
    if args.json:
        print(json.dumps({"on_bad": config.data.on_bad, **check.to_dict()}, indent=2))
        return 1 if check.problems else 0
    skip = config.data.on_bad == "skip"
    for problem in check.problems:
        print(f"{problem['message']}  [{problem['action'] if skip else 'stops training'}]")
    print(check.summary())
    if check.problems:
        print("data.on_bad is skip: `train` leaves these out and trains on the rest" if skip else
              "data.on_bad is fail: `train` stops before training until these are fixed")
    return 1 if check.problems else 0


def _segmentation_line(metrics: dict) -> str:
    per_class = ", ".join(f"{name} {iou:.4f}" for name, iou in list(metrics["per_class_iou"].items())[:6]
                          if iou is not None)
    return (f"validation miou: {metrics['miou']:.4f}  pixel accuracy: {metrics['pixel_accuracy']:.4f}  "
            f"fw_iou: {metrics['fw_iou']:.4f}  per class: {per_class}")


def export_run(run_dir: str | Path, output: str | Path | None = None, version: int | None = None) -> Path:
    from kerascv_tl.config import load_config
    from kerascv_tl.export import export_classifier, export_detector, export_segmenter
    from kerascv_tl.recipes import RunFolder

    run = RunFolder(run_dir)
    if not run.is_finished():
        raise FileNotFoundError(f"{run.root} is not a finished run (no model.keras / metrics.json / model_card.json)")
    config = load_config(run / "config.yaml")
    card = json.loads((run / "model_card.json").read_text())
    model = run.load_model()
    base = Path(output) if output else Path(config.export.dir) / (config.export.name or run.root.name)
    if config.task == "detection":
        return export_detector(model, run.load_class_names(), base, config.export.score_threshold,
                               config.export.max_detections, config.export.iou_threshold, card, version)
    if config.task == "segmentation":
        return export_segmenter(model, run.load_class_names(), base, config.export.probabilities, card, version)
    return export_classifier(model, run.load_class_names(), base, config.data.crop_fraction, config.export.top_k,
                             card, version)


def cmd_export(args) -> int:
    folder = export_run(args.run, args.output, args.version)
    print(f"exported SavedModel: {folder}")
    print(f"  saved_model_cli show --dir {folder} --all")
    return 0


def cmd_evaluate(args) -> int:
    model_path = Path(args.model)
    data_name = Path(args.data.rstrip("/")).name.replace(":", "_") or "data"
    if (model_path / "model.keras").is_file():
        from kerascv_tl.config import load_config
        from kerascv_tl.recipes import RunFolder
        from kerascv_tl.recipes.classification import evaluate_model

        run = RunFolder(model_path)
        config = load_config(run / "config.yaml")
        class_names = run.load_class_names()
        model = run.load_model()
        out = Path(args.output) if args.output else run.root / f"eval_{data_name}"
        if config.task == "detection":
            from kerascv_tl.recipes.detection import evaluate_detector, read_source

            source = read_source(args.data, config.data, class_names)
            metrics = evaluate_detector(model, source, config.data, out, class_names, args.batch_size)
            print(f"map_50_95: {metrics['map_50_95']:.4f}  map_50: {metrics['map_50']:.4f} on "
                  f"{metrics['num_images']} images; reports in {out}")
            return 0
        if config.task == "segmentation":
            from kerascv_tl.data.segmentation import mask_folder_source, pennfudan_segmentation_source
            from kerascv_tl.recipes.segmentation import evaluate_segmenter

            if config.data.format == "pennfudan":
                source = pennfudan_segmentation_source(args.data)
            else:
                source = mask_folder_source(args.data, config.data.classes, config.data.ignore_index)
            if source.class_names != class_names:
                from kerascv_tl.data.errors import DataError

                raise DataError(f"{args.data}: classes {source.class_names} differ from the run's {class_names}")
            metrics = evaluate_segmenter(model, source, config.data, out, class_names, args.batch_size)
            print(_segmentation_line(metrics) + f" on {metrics['num_images']} images; reports in {out}")
            return 0
        source = _eval_source(args.data, class_names, config.data.tfds_val_split, config.data.tfds_data_dir)
        metrics = evaluate_model(model, source, config.data, out, class_names, args.batch_size)
    else:
        from kerascv_tl.export import load_serving

        loaded, folder = load_serving(model_path)
        card = json.loads((folder / "model_card.json").read_text())
        if card.get("task") in ("detection", "segmentation"):
            from kerascv_tl.data.errors import DataError

            raise DataError(f"{folder}: evaluate the {card['task']} run folder (its SavedModel is checked against "
                            "it in the tests)")
        class_names = card["labels"]
        source = _eval_source(args.data, class_names)
        out = Path(args.output) if args.output else Path("runs") / "eval" / f"{folder.parent.name}-v{folder.name}-{data_name}"
        metrics = _evaluate_saved_model(loaded, source, class_names, out, args.batch_size, card)
    print(f"accuracy: {metrics['accuracy']:.4f} on {metrics['num_examples']} images; reports in {out}")
    return 0


def _eval_source(spec: str, class_names, tfds_split="test", tfds_data_dir=None):
    from kerascv_tl.data.classification import source_from_spec

    if spec.startswith("tfds:") and spec.count(":") == 2:
        _, name, tfds_split = spec.split(":")
        spec = f"tfds:{name}"
    return source_from_spec(spec, class_names=class_names, tfds_split=tfds_split, tfds_data_dir=tfds_data_dir)


def _evaluate_saved_model(loaded, source, class_names, out, batch_size, card):
    import numpy as np
    import tensorflow as tf

    from kerascv_tl.data.decode import decode_image
    from kerascv_tl.data.transforms import eval_transform
    from kerascv_tl.evaluation.report import predict_all, write_classification_report

    size, crop = card["export"]["image_size"], card["export"]["crop_fraction"]
    serve = loaded.signatures["serving_default"]
    if source.paths is None:
        from kerascv_tl.data.errors import DataError

        raise DataError(f"{source.description}: evaluating a SavedModel needs image files (a folder or CSV); "
                        "evaluate the run folder for TFDS data")
    files = tf.data.Dataset.from_tensor_slices((source.paths, source.labels)).batch(batch_size)

    def batches():
        for paths, labels in files:
            encoded = tf.map_fn(tf.io.read_file, paths)
            # Display thumbnails for the mistakes grid go through the same decode + transform as the graph.
            shown = np.stack([eval_transform(decode_image(b), size, crop).numpy() for b in encoded])
            yield encoded, labels.numpy(), shown

    y_true, probs, mistakes = predict_all(lambda encoded: serve(image_bytes=encoded)["probabilities"].numpy(), batches())
    return write_classification_report(out, y_true, probs, class_names, mistakes, extra={"saved_model": card.get("name")})


def cmd_predict(args) -> int:
    import tensorflow as tf

    from kerascv_tl.data.image_check import bomb_problem
    from kerascv_tl.export import load_serving

    loaded, folder = load_serving(args.model)
    serve = loaded.signatures["serving_default"]
    failures = 0
    for image in args.images:
        path = Path(image)
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            failures += 1
            continue
        bomb = bomb_problem(path)
        if bomb is not None:
            print(f"error: {path}: {bomb}", file=sys.stderr)
            failures += 1
            continue
        try:
            out = serve(image_bytes=tf.constant([path.read_bytes()]))
        except tf.errors.InvalidArgumentError as e:
            print(f"error: {path}: cannot decode image ({e.message.splitlines()[0][:120]})", file=sys.stderr)
            failures += 1
            continue
        if "boxes" in out:
            _report_detections(path, out, args)
            continue
        if "class_map" in out:
            _report_segmentation(path, out, args, json.loads((folder / "model_card.json").read_text())["labels"])
            continue
        k = min(args.top_k, out["class_ids"].shape[-1])
        names = [n.decode() for n in out["class_names"].numpy()[0][:k]]
        scores = [float(s) for s in out["scores"].numpy()[0][:k]]
        if args.json:
            print(json.dumps({"image": str(path), "classes": names, "scores": scores}))
        else:
            print(f"{path}: " + ", ".join(f"{n} ({s:.3f})" for n, s in zip(names, scores)))
    return 2 if failures else 0


def _report_detections(path: Path, out, args) -> None:
    """Prints a detector's boxes (original pixels) and draws them onto a copy of the image."""
    from PIL import Image, ImageDraw, ImageOps

    n = int(out["num_detections"].numpy()[0])
    boxes = out["boxes"].numpy()[0][:n]
    names = [x.decode() for x in out["class_names"].numpy()[0][:n]]
    scores = out["scores"].numpy()[0][:n]
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")  # the graph honours EXIF orientation too
    draw = ImageDraw.Draw(image)
    for (x0, y0, x1, y1), name, score in zip(boxes, names, scores):
        draw.rectangle([x0, y0, x1, y1], outline=(230, 40, 40), width=max(2, image.width // 200))
        draw.text((x0 + 3, y0 + 2), f"{name} {score:.2f}", fill=(230, 40, 40))
    target = Path(args.output_dir) / f"{path.stem}_detections.png"
    from kerascv_tl.utils.io import atomic_path

    with atomic_path(target, suffix=".png") as tmp:
        image.save(tmp)
    if args.json:
        print(json.dumps({"image": str(path), "annotated": str(target), "detections": [
            {"box_xyxy": [round(float(v), 1) for v in box], "class": name, "score": round(float(score), 4)}
            for box, name, score in zip(boxes, names, scores)]}))
        return
    print(f"{path}: {n} detection(s) -> {target}")
    for box, name, score in zip(boxes, names, scores):
        print(f"  {name} {score:.3f} at ({box[0]:.0f}, {box[1]:.0f}, {box[2]:.0f}, {box[3]:.0f})")


def _report_segmentation(path: Path, out, args, class_names) -> None:
    """Writes a coloured overlay of the class map (original resolution) and prints the class areas."""
    import numpy as np

    from kerascv_tl.data.decode import read_image_file
    from kerascv_tl.evaluation.segmentation import write_overlay_png

    height, width = int(out["height"].numpy()[0]), int(out["width"].numpy()[0])
    class_map = out["class_map"].numpy()[0][:height, :width]
    target = write_overlay_png(read_image_file(path), class_map, len(class_names),
                               Path(args.output_dir) / f"{path.stem}_segmentation.png")
    counts = np.bincount(class_map.ravel(), minlength=len(class_names))
    areas = {name: round(float(c) / class_map.size, 4) for name, c in zip(class_names, counts) if c}
    if args.json:
        print(json.dumps({"image": str(path), "overlay": str(target), "size": [width, height], "class_fractions": areas}))
        return
    print(f"{path}: {width}x{height} -> {target}")
    print("  " + ", ".join(f"{name} {fraction:.1%}" for name, fraction in areas.items()))


def cmd_backbones(args) -> int:
    from kerascv_tl.backbones import REGISTRY

    print(f"{'name':<20} {'source':<20} {'params':>12} {'input':>7}  {'pooling':<7} {'pyramid':<9} preprocessing")
    for name, spec in REGISTRY.items():
        params = spec.build(spec.default_image_size, None).count_params()
        pyramid = "/".join(str(s) for s in spec.pyramid_strides) or "-"
        print(f"{name:<20} {spec.source:<20} {params:>12,} {spec.default_image_size:>7}  {spec.pooling:<7} "
              f"{pyramid:<9} {spec.preprocessing.source}")
    return 0


def cmd_demo(args) -> int:
    from kerascv_tl.config import load_config
    from kerascv_tl.data.synthetic import write_classification_dataset
    from kerascv_tl.recipes import train

    started = time.time()
    config = load_config(args.config)
    data_root = Path(config.data.train).parent
    write_classification_dataset(data_root, train_per_class=60, val_per_class=20, image_size=config.data.image_size)
    print(f"[1/4] shapes dataset: {data_root}")
    run, metrics = train(config, overwrite=True, config_path=args.config, verbose=2)
    print(f"[2/4] trained {config.backbone.name} ({run.root}): validation accuracy {metrics['accuracy']:.4f}")
    folder = export_run(run.root)
    print(f"[3/4] exported SavedModel: {folder}")
    image = sorted((Path(config.data.val) / "triangle").glob("*.png"))[0]
    print("[4/4] prediction through the exported SavedModel:")
    cmd_predict(argparse.Namespace(model=str(folder), images=[str(image)], top_k=3, json=False))
    print(f"\ndone in {time.time() - started:.0f} s")
    print(f"  run folder (config, logs, checkpoints, metrics, plots, model card): {run.root}")
    print(f"  SavedModel for TF Serving: {folder}  (model card: {folder / 'model_card.json'})")
    print(f"  try: kerascv-tl predict {folder} {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
