"""The run folder: the unit of work, and every file in it.

A run folder holds everything one training run wrote. Re-running the same command resumes it: finished
phases are skipped (their weights reloaded), an interrupted phase continues from its backup
(`kerascv_tl.training.fit.fit_phase`).

    RUN/config.yaml            resolved config          RUN/history_<phase>.csv   CSVLogger per phase
    RUN/class_names.json       label order              RUN/logs/<phase>/         TensorBoard
    RUN/checkpoints/best.weights.h5   best by monitor   RUN/backup/<phase>/       BackupAndRestore
    RUN/phase_<phase>.done.json + .weights.h5           RUN/model.keras           final (best) model
    RUN/metrics.json, confusion_matrix.*, *.png, model_card.json + .md            evaluation
    RUN/data_check.json        what the data check found and left out
    RUN/backbone.json, distribution.json, timings.json
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kerascv_tl.utils.io import atomic_path, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    import keras

    from kerascv_tl.config import RecipeConfig

PHASES = ("head", "fine_tune")  # the schedule's phases, in order


class RunExistsError(RuntimeError):
    """The run folder holds a finished run, or an unfinished one with a different config."""


class RunFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @property
    def best_weights(self) -> Path:
        return self.root / "checkpoints" / "best.weights.h5"

    @property
    def model_path(self) -> Path:
        return self.root / "model.keras"

    def history(self, phase: str) -> Path:
        return self.root / f"history_{phase}.csv"

    def is_finished(self) -> bool:
        return all((self.root / name).is_file() for name in ("model.keras", "metrics.json", "model_card.json"))

    def prepare(self, config: RecipeConfig, overwrite: bool = False) -> None:
        """Creates the folder, refusing to clobber a finished run or resume one with another config."""
        text = config.to_yaml()
        holds_other_files = (
            self.root.is_dir() and any(self.root.iterdir()) and not (self.root / "config.yaml").is_file()
        )
        if holds_other_files or (self.root.exists() and not self.root.is_dir()):
            # --overwrite deletes run folders only: a mistyped --output must not cost someone their files.
            raise RunExistsError(
                f"{self.root} is not empty and holds no run (no config.yaml); refusing to "
                f"{'delete' if overwrite else 'write into'} it. Choose another --output"
            )
        if self.root.exists() and overwrite:
            shutil.rmtree(self.root)
        elif self.is_finished():
            raise RunExistsError(f"{self.root} already holds a finished run; pass --overwrite to start again")
        elif (self.root / "config.yaml").is_file() and (self.root / "config.yaml").read_text() != text:
            raise RunExistsError(
                f"{self.root} holds an unfinished run with a different config; pass --overwrite to discard "
                f"it, or --output to use another folder"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / "config.yaml", text)

    def load_config(self) -> RecipeConfig:
        from kerascv_tl.config import load_config

        return load_config(self.root / "config.yaml")

    def save_class_names(self, class_names: list[str]) -> None:
        atomic_write_json(self.root / "class_names.json", list(class_names))

    def load_class_names(self) -> list[str]:
        return json.loads((self.root / "class_names.json").read_text())

    def save_model(self, model: keras.Model) -> Path:
        with atomic_path(self.model_path, suffix=".keras") as tmp:
            model.save(tmp)
        return self.model_path

    def load_model(self) -> keras.Model:
        """The run's final model; `.keras` files load with safe_mode (no arbitrary code)."""
        import kerascv_tl.tasks.classifier  # noqa: F401  (registers the package's layers for deserialisation)
        import kerascv_tl.tasks.detector  # noqa: F401  (the pyramid encoder)
        import kerascv_tl.tasks.retinanet  # noqa: F401  (imports KerasHub, so only when a run is loaded)
        import kerascv_tl.tasks.segmenter  # noqa: F401
        import kerascv_tl.training.optimizers  # noqa: F401  (the global-clip optimizers)
        from kerascv_tl.utils.model_files import load_keras_model

        return load_keras_model(self.model_path)

    def training_seconds(self) -> float:
        """Seconds recorded by the finished phases (an interrupted phase counts its last invocation)."""
        return sum(float(json.loads(p.read_text()).get("seconds", 0.0)) for p in self.root.glob("phase_*.done.json"))

    def history_files(self) -> list[tuple[str, Path]]:
        found = [(p.stem.removeprefix("history_"), p) for p in self.root.glob("history_*.csv")]
        return sorted(found, key=lambda item: PHASES.index(item[0]) if item[0] in PHASES else len(PHASES))

    def write_timings(self, started: float) -> dict:
        """timings.json: wall times stay out of metrics.json, so two runs with the same seed write identical metrics."""
        timings = {
            "train_wall_time_s": round(self.training_seconds(), 1),
            "this_invocation_wall_time_s": round(time.time() - started, 1),
        }
        atomic_write_json(self / "timings.json", timings)
        return timings

    def write_model_card(self, card: dict) -> None:
        """model_card.json and the same card in Markdown, model_card.md (named after the JSON rather than README.md:
        a README in a run folder would read as documentation of the folder, and the export's README.md is this
        page with the export's facts added)."""
        from kerascv_tl.export.card_markdown import render_model_card

        card["training_time_s"] = round(self.training_seconds(), 1)
        atomic_write_json(self / "model_card.json", card)
        atomic_write_text(self / "model_card.md", render_model_card(card))


def default_run_dir(config: RecipeConfig, config_path: str | None) -> Path:
    """`<output_dir>/<recipe name>`; a run folder's own config.yaml, edited and trained again, goes to
    `<output_dir>/<that run's name>_rerun` rather than into a folder named `config` or over the run it came from."""
    if not config_path:
        return Path(config.output_dir) / f"{config.task}_{config.recipe}"
    path = Path(config_path)
    if path.name == "config.yaml" and (path.parent / "class_names.json").is_file():
        return Path(config.output_dir) / f"{path.resolve().parent.name}_rerun"
    return Path(config.output_dir) / path.stem
