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
    from kerascv_tl.run_folder import RunExistsError
    from kerascv_tl.utils.model_files import UnsafeModelError

    try:
        return args.func(args) or 0
    except (
        ConfigError,
        DataError,
        WeightsError,
        RunExistsError,
        UnsafeModelError,
        FileNotFoundError,
        FileExistsError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {example} (repeatable)",
    )


def _parser() -> argparse.ArgumentParser:
    """The CLI contract: one declaration per subcommand and option, read top to bottom."""
    from kerascv_tl.config import STRATEGIES  # no TensorFlow import

    parser = argparse.ArgumentParser(prog="kerascv-tl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="run a recipe config")
    p.add_argument("config", help="recipe YAML, e.g. recipes/flowers_fine_tune.yaml")
    _add_overrides(p, "train.epochs=3")
    p.add_argument("--output", help="run folder (default: <output_dir>/<config name>)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing run in the folder")
    p.add_argument("--export", action="store_true", help="also export a SavedModel when training ends")
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="tf.distribute strategy, same as --set strategy=NAME (default: the config's, auto)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("check-data", help="check a recipe's dataset: every bad file and why, then a summary")
    p.add_argument("config", help="recipe YAML")
    _add_overrides(p, "data.train=other/folder")
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

    p = sub.add_parser("predict", help="run images through an exported SavedModel (classes, labels, boxes or masks)")
    p.add_argument("model", help="SavedModel (base or version folder)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top-k", type=int, default=3, help="classification: how many classes to print")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    p.add_argument(
        "--output-dir", default="predictions", help="detection and segmentation: where the annotated copies go"
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("backbones", help="list registered backbones with parameter counts and input sizes")
    p.set_defaults(func=cmd_backbones)

    p = sub.add_parser("demo", help="offline end-to-end demo on the synthetic shapes dataset")
    p.add_argument("--config", default="recipes/shapes_fine_tune.yaml")
    p.set_defaults(func=cmd_demo)
    return parser


def cmd_train(args) -> int:
    from kerascv_tl.config import load_config
    from kerascv_tl.distribute import is_chief
    from kerascv_tl.recipes import train
    from kerascv_tl.tasks.registry import get_task

    overrides = args.overrides + ([f"strategy={args.strategy}"] if args.strategy else [])
    config = load_config(args.config, overrides)
    run, metrics = train(config, output=args.output, overwrite=args.overwrite, config_path=args.config)
    print(f"run folder: {run.root}")
    print(get_task(config.task).result_line(metrics))
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
        print(
            "data.on_bad is skip: `train` leaves these out and trains on the rest"
            if skip
            else "data.on_bad is fail: `train` stops before training until these are fixed"
        )
    return 1 if check.problems else 0


def export_run(run_dir: str | Path, output: str | Path | None = None, version: int | None = None) -> Path:
    """Exports a finished run's model as a SavedModel version folder (the task's serving signatures)."""
    from kerascv_tl.recipes import RunFolder
    from kerascv_tl.tasks.registry import get_task

    run = RunFolder(run_dir)
    if not run.is_finished():
        raise FileNotFoundError(f"{run.root} is not a finished run (no model.keras / metrics.json / model_card.json)")
    config = run.load_config()
    card = json.loads((run / "model_card.json").read_text())
    model = run.load_model()
    base = Path(output) if output else Path(config.export.dir) / (config.export.name or run.root.name)
    return get_task(config.task).export(model, run.load_class_names(), base, config, card, version)


def cmd_export(args) -> int:
    folder = export_run(args.run, args.output, args.version)
    print(f"exported SavedModel: {folder}")
    print(f"  saved_model_cli show --dir {folder} --all")
    return 0


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
        metrics = task.evaluate(model, source, config, out, class_names, args.batch_size, run_metrics=run_metrics)
    else:
        from kerascv_tl.export import load_serving

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
    return 0


def cmd_predict(args) -> int:
    import tensorflow as tf

    from kerascv_tl.data.image_check import bomb_problem
    from kerascv_tl.export import load_serving
    from kerascv_tl.tasks.registry import get_task

    loaded, folder = load_serving(args.model)
    serve = loaded.signatures["serving_default"]
    card = json.loads((folder / "model_card.json").read_text())
    task = get_task(card.get("task", "classification"))
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
        task.print_prediction(path, out, card, args)
    return 2 if failures else 0


def cmd_backbones(args) -> int:
    from kerascv_tl.backbones import REGISTRY

    print(f"{'name':<20} {'source':<20} {'params':>12} {'input':>7}  {'pooling':<7} {'pyramid':<9} preprocessing")
    for name, spec in REGISTRY.items():
        params = spec.build(spec.default_image_size, None).count_params()
        pyramid = "/".join(str(s) for s in spec.pyramid_strides) or "-"
        print(
            f"{name:<20} {spec.source:<20} {params:>12,} {spec.default_image_size:>7}  {spec.pooling:<7} "
            f"{pyramid:<9} {spec.preprocessing.source}"
        )
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
