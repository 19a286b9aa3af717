"""`kerascv-tl train`, `check-data`, `recipes` and `demo`: from a recipe (a YAML file or a packaged recipe's
name) or from a data folder alone."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kerascv_tl.cli.models import export_run
from kerascv_tl.cli.predict import cmd_predict


def _add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {example} (repeatable)",
    )


def add_parsers(sub, common) -> None:
    from kerascv_tl.config import STRATEGIES  # no TensorFlow import

    p = sub.add_parser("train", parents=[common], help="train from a recipe or a data folder")
    p.add_argument("config", help="recipe YAML, or a packaged recipe's name (kerascv-tl recipes)")
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

    p = sub.add_parser(
        "check-data", parents=[common], help="check a recipe's dataset: every bad file and why, then a summary"
    )
    p.add_argument("config", help="recipe YAML or packaged recipe name")
    _add_overrides(p, "data.train=other/folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_check_data)

    p = sub.add_parser("demo", parents=[common], help="offline end-to-end demo on the synthetic shapes dataset")
    p.add_argument("--config", default="shapes_fine_tune")
    p.set_defaults(func=cmd_demo)


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
