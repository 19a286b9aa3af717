"""`kerascv-tl cv`: K-fold cross-validation of a recipe (`kerascv_tl.crossval`)."""

from __future__ import annotations

import argparse


def add_parsers(sub, common) -> None:
    p = sub.add_parser(
        "cv",
        parents=[common],
        help="K-fold cross-validation over all the labelled data (train + val pooled): mean ± std of the metrics",
    )
    p.add_argument("config", nargs="?", help="recipe YAML, or a packaged recipe's name (kerascv-tl recipes)")
    p.add_argument("--data", help="a data folder: its layout picks the task and the reader (no YAML needed)")
    p.add_argument("--task", help="the task, where a folder fits more than one (e.g. detection, segmentation)")
    p.add_argument("--folds", type=int, default=5, help="number of folds K (default 5)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=20 (repeatable)",
    )
    p.add_argument("--output", help="parent folder of the fold runs (default: <output_dir>/<recipe name>_cv)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing cross-validation in the folder")
    p.add_argument("--final", action="store_true", help="then train one model on all the labelled data (PARENT/final)")
    p.add_argument(
        "--export-ensemble",
        action="store_true",
        help="classification: export one SavedModel averaging the K fold models' probabilities (PARENT/ensemble)",
    )
    p.set_defaults(func=cmd_cv)


def cmd_cv(args: argparse.Namespace) -> int:
    from kerascv_tl.cli.train import config_from_args
    from kerascv_tl.crossval import cross_validate

    config, layout, run_dir = config_from_args(args)
    if layout is not None:
        print(f"data: {layout.description} -> {config.task}")
    output = args.output or (run_dir.with_name(f"{run_dir.name}_cv") if run_dir is not None else None)
    result = cross_validate(
        config,
        args.folds,
        output=output,
        overwrite=args.overwrite,
        final=args.final,
        export_ensemble=args.export_ensemble,
        config_path=args.config,
    )
    print(f"cross-validation folder: {result.root} (cv.json, cv.md; one run folder per fold)")
    if result.final is not None:
        print(f"final model (all the labelled data, no held-out figures): {result.final.root}")
    for kind, folder in result.exported.items():
        print(f"exported {kind} SavedModel: {folder}")
    print()
    print(result.table, end="")
    return 0
