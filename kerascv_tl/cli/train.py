"""`kerascv-tl train`, `check-data`, `recipes` and `demo`: from a recipe (a YAML file or a packaged recipe's
name) or from a data folder alone."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kerascv_tl import console
from kerascv_tl.cli.models import export_run, print_exported
from kerascv_tl.export.run_export import export_run_formats


def add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {example} (repeatable)",
    )


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="recipe YAML, or a packaged recipe's name (kerascv-tl recipes)")
    parser.add_argument(
        "--data", help="a data folder: its layout picks the task and the reader (no YAML needed); see docs/data.md"
    )
    # no `choices`: the task registry imports TensorFlow, which parsing must not; the config checks the name
    parser.add_argument("--task", help="the task, where a folder fits more than one (e.g. detection, segmentation)")


def add_parsers(sub, common) -> None:
    from kerascv_tl.config import RECIPES, STRATEGIES  # no TensorFlow import

    p = sub.add_parser("train", parents=[common], help="train from a recipe or a data folder")
    add_data_options(p)
    p.add_argument("--backbone", help="backbone name (kerascv-tl backbones) or a KerasHub preset")
    p.add_argument("--weights", help="imagenet, none, or a weights file / KerasHub preset folder")
    p.add_argument("--recipe", choices=RECIPES, help="feature_extraction (frozen backbone) or fine_tune")
    p.add_argument("--epochs", type=int, help="train.epochs (fine_tune: epochs after unfreezing)")
    p.add_argument("--image-size", type=int, help="data.image_size")
    p.add_argument("--batch-size", type=int, help="train.batch_size")
    add_overrides(p, "train.learning_rate=0.003")
    p.add_argument("--output", help="run folder (default: <output_dir>/<recipe or data folder name>)")
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
    add_data_options(p)
    add_overrides(p, "data.train=other/folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_check_data)

    p = sub.add_parser("recipes", parents=[common], help="list the packaged recipes, or print one")
    p.add_argument("name", nargs="?", help="print this recipe's YAML (copy it to edit it)")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("demo", parents=[common], help="offline end-to-end demo on the synthetic shapes dataset")
    p.add_argument("--config", default="shapes_fine_tune")
    p.set_defaults(func=cmd_demo)


_SHORT_FLAGS = {  # flag attribute -> config key
    "backbone": "backbone.name",
    "weights": "backbone.weights",
    "recipe": "recipe",
    "epochs": "train.epochs",
    "image_size": "data.image_size",
    "batch_size": "train.batch_size",
}


def config_from_args(args):
    """(config, data layout or None, default run folder or None) from a recipe and/or `--data`, the short flags
    and `--set` overrides, in that order of precedence (later wins)."""
    from kerascv_tl.config import ConfigError, load_config
    from kerascv_tl.data.layout import detect_layout

    if args.config is None and not args.data:
        raise ConfigError("give a recipe (a YAML file, or a packaged recipe's name: kerascv-tl recipes) or --data DIR")
    overrides, layout, run_dir = [], None, None
    if args.data:
        layout = detect_layout(args.data, args.task)
        if args.config is not None:
            declared = load_config(args.config).task
            if declared != layout.task:
                raise ConfigError(
                    f"{args.config} is a {declared} recipe, but {args.data} holds {layout.description} ({layout.task})"
                )
        overrides += layout.overrides()
    elif args.task:
        overrides.append(f"task={args.task}")
    for attribute, key in _SHORT_FLAGS.items():
        value = getattr(args, attribute, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    overrides += args.overrides
    if getattr(args, "strategy", None):
        overrides.append(f"strategy={args.strategy}")
    config = load_config(args.config, overrides)
    if layout is not None and args.config is None:
        data = Path(args.data).resolve()
        run_dir = Path(config.output_dir) / (data.stem if data.is_file() else data.name)
    return config, layout, run_dir


def cmd_train(args) -> int:
    from kerascv_tl.distribute import is_chief
    from kerascv_tl.recipes import train
    from kerascv_tl.tasks.registry import get_task

    config, layout, run_dir = config_from_args(args)
    if layout is not None:
        print(f"data: {layout.description} -> {config.task}")
    output = args.output or run_dir
    run, metrics = train(config, output=output, overwrite=args.overwrite, config_path=args.config)
    print(f"run folder: {run.root}")
    print(get_task(config.task).result_line(metrics))
    if args.export and is_chief():  # other workers of a multi-worker run keep no run folder
        print_exported(export_run_formats(run.root))
    if console.verbosity() >= 0:
        print(f"recipe: {run / 'config.yaml'} (edit and rerun with: kerascv-tl train {run / 'config.yaml'})")
    return 0


def cmd_recipes(args) -> int:
    from kerascv_tl.config import ConfigError
    from kerascv_tl.recipe_catalog import packaged_recipes

    recipes = packaged_recipes()
    if args.name:
        chosen = [r for r in recipes if r.name == args.name.removesuffix(".yaml")]
        if not chosen:
            raise ConfigError(f"no packaged recipe {args.name!r}; there are: {', '.join(r.name for r in recipes)}")
        print(chosen[0].text(), end="")
        return 0
    width = max(len(r.name) for r in recipes)
    for recipe in recipes:
        print(f"{recipe.name:<{width}}  {recipe.summary}")
    print("\nrun one: kerascv-tl train NAME; edit one: kerascv-tl recipes NAME > my_recipe.yaml")
    return 0


def cmd_check_data(args) -> int:
    """Prints every problem (file: reason [what training would do]) and a summary; 1 when there are problems."""
    from kerascv_tl.data.check import check_data

    config, layout, _ = config_from_args(args)
    if layout is not None and not args.json:
        print(f"data: {layout.description} -> {config.task}")
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
    run, metrics = train(config, overwrite=True, config_path=args.config)
    print(f"[2/4] trained {config.backbone.name} ({run.root}): validation accuracy {metrics['accuracy']:.4f}")
    folder = export_run(run.root)
    print(f"[3/4] exported SavedModel: {folder}")
    image = sorted((Path(config.data.val) / "triangle").glob("*.png"))[0]
    print("[4/4] prediction through the exported SavedModel:")
    from kerascv_tl.predict import load_predictor

    row = load_predictor(folder).predict([image], top_k=3)[0]
    print(f"{image}: " + ", ".join(f"{label} ({score:.3f})" for label, score in zip(row["labels"], row["scores"])))
    print(f"\ndone in {time.time() - started:.0f} s")
    print(f"  run folder (config, logs, checkpoints, metrics, plots, model card): {run.root}")
    print(f"  SavedModel for TF Serving: {folder}  (model card: {folder / 'model_card.json'})")
    print(f"  try: kerascv-tl predict {folder} {image}")
    return 0
