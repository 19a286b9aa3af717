"""Exporting a finished run folder: the one function `kerascv-tl export`, `train --export`, the demo and
`load_predictor(run folder)` all call."""

from __future__ import annotations

import json
from pathlib import Path


def export_run(run_dir: str | Path, output: str | Path | None = None, version: int | None = None) -> Path:
    """Exports a finished run's model as a SavedModel version folder (the task's serving signatures) under
    `output` (default: `<export.dir>/<export.name or the run's name>`); returns the version folder."""
    # Imported here: the run folder and the task registry import this package's exporters.
    from kerascv_tl.run_folder import RunFolder
    from kerascv_tl.tasks.registry import get_task

    run = RunFolder(run_dir)
    if not run.is_finished():
        raise FileNotFoundError(f"{run.root} is not a finished run (no model.keras / metrics.json / model_card.json)")
    config = run.load_config()
    card = json.loads((run / "model_card.json").read_text())
    model = run.load_model()
    base = Path(output) if output else Path(config.export.dir) / (config.export.name or run.root.name)
    return get_task(config.task).export(model, run.load_class_names(), base, config, card, version)
