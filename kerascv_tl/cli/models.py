"""`kerascv-tl evaluate` and `kerascv-tl export`: a finished run or an exported SavedModel."""

from __future__ import annotations

import json
from pathlib import Path

from kerascv_tl.export.run_export import export_run

__all__ = ["add_parsers", "cmd_evaluate", "cmd_export", "export_run"]


def add_parsers(sub, common) -> None:
    p = sub.add_parser(
        "evaluate", parents=[common], help="evaluate a run folder or an exported SavedModel on labelled data"
    )
    p.add_argument("model", help="run folder or SavedModel (base or version folder)")
    p.add_argument("--data", required=True, help="class-per-folder tree, CSV or tfds:NAME[:SPLIT]")
    p.add_argument("--output", help="report folder (default: <run>/eval_<data name> or runs/eval/...)")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", parents=[common], help="export a run's model as a SavedModel for TF Serving")
    p.add_argument("run", help="run folder")
    p.add_argument("--output", help="model base folder; versions go inside (default: saved_models/<name>)")
    p.add_argument("--version", type=int, help="version number (default: next free)")
    p.set_defaults(func=cmd_export)


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
