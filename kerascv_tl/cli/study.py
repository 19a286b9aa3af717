"""`kerascv-tl cv`: K-fold cross-validation of a recipe (`kerascv_tl.crossval`); `kerascv-tl compare`: backbones
compared by a linear probe on a classification recipe's data (`kerascv_tl.compare`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kerascv_tl.cli.train import add_data_options, add_overrides


def add_parsers(sub, common) -> None:
    p = sub.add_parser(
        "cv",
        parents=[common],
        help="K-fold cross-validation over all the labelled data (train + val pooled): mean ± std of the metrics",
    )
    add_data_options(p)
    p.add_argument("--folds", type=int, default=5, help="number of folds K (default 5)")
    add_overrides(p, "train.epochs=20")
    p.add_argument("--output", help="parent folder of the fold runs (default: <output_dir>/<recipe name>_cv)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing cross-validation in the folder")
    p.add_argument("--final", action="store_true", help="then train one model on all the labelled data (PARENT/final)")
    p.add_argument(
        "--export-ensemble",
        action="store_true",
        help="classification: export one SavedModel averaging the K fold models' probabilities (PARENT/ensemble)",
    )
    p.set_defaults(func=cmd_cv)
    _add_compare_parser(sub, common)


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


def _add_compare_parser(sub, common) -> None:
    p = sub.add_parser(
        "compare",
        parents=[common],
        help="compare backbones on a classification recipe's data: linear-probe accuracy, size, speed, latency",
    )
    p.add_argument("config", help="classification recipe YAML, or a packaged recipe's name (kerascv-tl recipes)")
    p.add_argument(
        "--backbones",
        help="comma-separated registry names (kerascv-tl backbones); default: the config's backbone and every "
        "backbone whose weights are on this machine",
    )
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="weights for one backbone: a file, a KerasHub preset folder, imagenet or none (repeatable); default: "
        "the config's for its own backbone, ImageNet weights already in the local cache for the others",
    )
    p.add_argument("--max-latency-ms", type=float, help="also name the best backbone at or under this batch-1 latency")
    p.add_argument(
        "--allow-random",
        action="store_true",
        help="probe a backbone without weights here from random initialisation (marked 'random' everywhere)",
    )
    p.add_argument("--probe-epochs", type=int, default=30, help="epochs of the linear probe (default 30)")
    p.add_argument("--output", help="report folder (default: <output_dir>/compare_<config name>)")
    add_overrides(p, "data.image_size=160")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from kerascv_tl.compare import PLOT_NAME, ProbeSettings, compare_backbones, print_lines
    from kerascv_tl.compare.offline import parse_weights_options
    from kerascv_tl.config import ConfigError, load_config

    config = load_config(args.config, args.overrides)
    name = Path(args.config).stem
    output = Path(args.output or Path(config.output_dir) / f"compare_{name}")
    backbones = None
    if args.backbones is not None:
        backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
        if not backbones:
            raise ConfigError("--backbones is empty: give comma-separated backbone names")
    if args.probe_epochs < 1:
        raise ConfigError(f"--probe-epochs must be at least 1, got {args.probe_epochs}")
    result = compare_backbones(
        config,
        output,
        backbones,
        parse_weights_options(args.weights),
        args.allow_random,
        args.max_latency_ms,
        ProbeSettings(epochs=args.probe_epochs),
        config_name=name,
    )
    print("\n".join(print_lines(result)))
    print(f"report: {output / 'compare.md'}, {output / 'compare.json'}, {output / PLOT_NAME}")
    return 0
