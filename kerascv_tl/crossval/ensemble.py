"""The K fold models of a classification cross-validation as one model: one image input, each fold's classifier
on it, their class probabilities averaged. Exported through the classification task's own export (the same
serving signatures, prepare and top-k finish as any classifier's SavedModel)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import keras

from kerascv_tl.export.run_export import read_run_images
from kerascv_tl.run_folder import RunFolder

__all__ = ["ensemble_model", "export_ensemble"]


def ensemble_model(models: Sequence[keras.Model]) -> keras.Model:
    """image -> the mean of `models`' outputs (each an image -> probabilities classifier of the same input size)."""
    first = models[0]
    shapes = {tuple(m.input_shape[1:]) for m in models}
    if len(shapes) != 1 or len({m.output_shape[-1] for m in models}) != 1:
        raise ValueError(f"the fold models differ in input or output shape: {sorted(shapes)}")
    image = keras.Input(shape=first.input_shape[1:], name="image")
    # Each fold model is re-wrapped under its own name: the K models' layers carry the same names.
    outputs = [keras.Model(m.inputs[0], m.outputs[0], name=f"fold_{k}")(image) for k, m in enumerate(models, start=1)]
    averaged = keras.layers.Average(name="mean_probabilities", dtype="float32")(outputs)
    return keras.Model(image, averaged, name="cv_ensemble")


def export_ensemble(task, fold_runs: Sequence[RunFolder], base_dir: Path, summary: dict) -> Path:
    """Writes the ensemble of `fold_runs`' models as a SavedModel version folder under `base_dir`; its card is the
    first fold's with the cross-validated figures (`summary`, the means) and the folds it averages."""
    models = [run.load_model() for run in fold_runs]
    first = fold_runs[0]
    config = first.load_config()
    class_names = first.load_class_names()
    for run in fold_runs[1:]:
        if run.load_class_names() != class_names:
            raise ValueError(f"{run.root} has other classes than {first.root}; the folds cannot be averaged")
    card = json.loads((first / "model_card.json").read_text())
    card["name"] = f"{base_dir.name}"
    card["metrics"] = {name: figures["mean"] for name, figures in summary.items()}
    card["ensemble"] = {
        "folds": len(fold_runs),
        "combine": "mean of the fold models' probabilities",
        "metrics": "cross-validated: each fold model on its held-out fold, mean over the folds",
    }
    card.get("data", {}).pop("val_images", None)
    config.export.name = base_dir.name
    warmup = read_run_images(_first_training_image(first))
    return task.export(ensemble_model(models), class_names, base_dir, config, card, warmup_images=warmup or None)


def _first_training_image(run: RunFolder) -> list[str]:
    """One image file of the fold (from its fold.json), for the SavedModel's warm-up request."""
    membership = run / "fold.json"
    if not membership.is_file():
        return []
    return json.loads(membership.read_text())["validation"][:1]
