"""The Task interface: everything that differs between classification, detection, segmentation (and the
tasks to come) behind one set of hooks.

`kerascv_tl.recipes.train` runs every task the same way: read and check the sources (`read_sources`), build
the model (`build_model`), run the one two-phase schedule (`kerascv_tl.training.schedule`, which asks the task
for its datasets and its compile), evaluate (`evaluate`), and write the model card (`serving_resize`). The CLI's
`evaluate`, `export`, `predict` and `check-data` dispatch through the same hooks, found by name in
`kerascv_tl.tasks.registry`. A task's models stay plain `keras.Model`s built by `classifier()`, `detector()`,
`segmenter()`; a Task only says how to feed, compile, evaluate, export and present them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

    from kerascv_tl.backbones import Backbone
    from kerascv_tl.config import DataConfig, RecipeConfig
    from kerascv_tl.data.epochs import EpochData
    from kerascv_tl.data.problems import ProblemLog
    from kerascv_tl.export.steps import NetworkFn, ServingSteps
    from kerascv_tl.run_folder import RunFolder
    from kerascv_tl.tasks.presets import PresetStart


@dataclass
class TaskSetup:
    """What the schedule works with once the data and the model are built."""

    config: RecipeConfig
    run: RunFolder
    train: Any  # the task's training source (has `class_names` and `__len__`)
    val: Any  # the task's validation source
    backbone: Backbone
    model: keras.Model
    strategy: tf.distribute.Strategy
    start: PresetStart | None = None  # set when the model started from a task preset (`model.preset`)

    @property
    def class_names(self) -> list[str]:
        return list(self.train.class_names)


class Task:
    """One task's hooks. Subclasses set the class attributes and implement the hooks that raise here."""

    name: ClassVar[str]
    #: `train.monitor: auto` becomes this (a metric Keras logs for the task's compiled model).
    default_monitor: ClassVar[str]
    #: Config keys (dotted) the task does not use: a value other than the default is a ConfigError naming the
    #: key and the task, so that no setting is silently ignored. Each entry: (key, why it does not apply).
    unused_config_keys: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: The evaluation loop `evaluate` runs: fn(model, source, data_config, out_dir, class_names, batch_size,
    #: histories, extra) -> metrics (`kerascv_tl.evaluation.*_loop`), set with `staticmethod(...)`.
    evaluation_loop: ClassVar[Callable[..., dict]]
    #: The metrics.json keys the model card repeats, in this order.
    card_metrics: ClassVar[tuple[str, ...]] = ()
    #: Why the task's LiteRT export refuses full-integer int8 (`export.quantize: int8`); None where it is offered.
    litert_int8_refusal: ClassVar[str | None] = None
    #: The KerasHub task family (`keras_hub.models.<name>`) whose presets can start a run (`model.preset`); None where
    #: none can.
    keras_hub_task: ClassVar[str | None] = None
    #: Whether the task's model is a KerasHub task that `export --format preset` can write.
    exports_presets: ClassVar[bool] = False

    # ---------------------------------------------------------------------------------------------- config

    def check_config(self, config: RecipeConfig) -> list[str]:
        """Problems with `config` for this task, one message per problem (empty when it is fine)."""
        from kerascv_tl.config import RecipeConfig

        defaults = RecipeConfig()
        problems = []
        for key, why in self.unused_config_keys:
            value, default = _dotted(config, key), _dotted(defaults, key)
            if value != default:
                problems.append(f"{key} is not used by {self.name} ({why}); remove it or set it back to {default!r}")
        if self.keras_hub_task is None and config.model.preset is not None:
            problems.append(f"model.preset is not offered for {self.name}: no KerasHub task family fits its model")
        if not self.exports_presets and "preset" in config.export.formats:
            problems.append(f"export format preset is not offered for {self.name}: its model is not a KerasHub task")
        if config.export.quantize == "int8" and self.litert_int8_refusal:
            problems.append(f"export.quantize int8 is not offered for {self.name}: {self.litert_int8_refusal}")
        return problems

    # ------------------------------------------------------------------------------------------------ data

    def read_sources(self, data_config: DataConfig, seed: int, problems: ProblemLog | None = None) -> tuple[Any, Any]:
        """(train, val) sources from `data:`; with `problems`, bad files are reported there and left out."""
        raise NotImplementedError

    def read_eval_source(self, spec: str, config: RecipeConfig, class_names: Sequence[str]) -> Any:
        """The labelled source `kerascv-tl evaluate RUN --data SPEC` reads, with the run's classes."""
        raise NotImplementedError

    def describe_data(self, train: Any, val: Any) -> str:
        """One log line on what was read."""
        return f"data: {len(train)} training and {len(val)} validation examples, {len(train.class_names)} classes"

    def training_data(self, setup: TaskSetup) -> EpochData:
        """Training batches for each epoch, a pure function of (seed, epoch) (exact resume)."""
        raise NotImplementedError

    def validation_data(self, setup: TaskSetup) -> tf.data.Dataset:
        """Validation batches for `fit`'s `validation_data`."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------------- model

    def build_model(self, config: RecipeConfig, backbone: Backbone, train: Any) -> keras.Model:
        """The task model on `backbone` for the training source `train` (its class names; detection also fits its
        anchors to its boxes); called under the strategy's scope and the precision policy."""
        raise NotImplementedError

    def compile(self, model: keras.Model, setup: TaskSetup, learning_rate: Any) -> None:
        """Compiles `model` (the task model, or the model `head_phase` returned) with the config's optimizer."""
        raise NotImplementedError

    def head_phase(
        self, setup: TaskSetup, train_data: EpochData, val_data: tf.data.Dataset
    ) -> tuple[keras.Model, EpochData, tf.data.Dataset]:
        """(model, training data, validation data) the frozen-backbone phase fits. By default the task model on
        images; a task may train a smaller model that shares the task model's head layers (cached features)."""
        return setup.model, train_data, val_data

    # --------------------------------------------------------------------------------------------- results

    def evaluate(
        self,
        model: keras.Model,
        source: Any,
        config: RecipeConfig,
        out_dir: str | Path,
        class_names: Sequence[str],
        batch_size: int,
        histories: Sequence[tuple[str, Path]] = (),
        extra: dict | None = None,
        run_metrics: dict | None = None,
    ) -> dict:
        """Runs `model` over `source`, writes metrics.json and the task's pictures into `out_dir`; the metrics.

        `run_metrics`: the metrics.json of the run the model comes from, when evaluating a finished run on other
        data (`kerascv-tl evaluate RUN`): figures fixed on the run's validation data (multi-label's decision
        threshold) are reused from it rather than tuned again on the data being evaluated."""
        return self.evaluation_loop(model, source, config.data, out_dir, class_names, batch_size, histories, extra)

    def explain(
        self,
        model: keras.Model,
        source: Any,
        config: RecipeConfig,
        out_dir: str | Path,
        class_names: Sequence[str],
        count: int,
    ) -> dict:
        """Writes visual explanations of `model` on `source` into `out_dir`/explain/ (`kerascv-tl evaluate
        --explain COUNT`: the `count` most confident mistakes and `count` correct examples per class) and returns
        their index, which the CLI adds to the evaluation's metrics.json under "explain"."""
        from kerascv_tl.data.errors import DataError

        raise DataError(f"--explain is offered for classification only, not for {self.name}")

    def run_summary(self, setup: TaskSetup) -> dict:
        """Facts about the run that metrics.json carries beside the task's figures (no wall times)."""
        summary = {
            "recipe": setup.config.recipe,
            "task": self.name,
            "backbone": setup.backbone.name,
            "num_train_images": len(setup.train),
        }
        if setup.start is not None:
            summary["start"] = setup.start.summary()
        return summary

    def headline(self, metrics: dict) -> str:
        """The metrics in a few words, for logs (e.g. "accuracy 0.9120")."""
        raise NotImplementedError

    def result_line(self, metrics: dict) -> str:
        """What `kerascv-tl train` prints about the validation metrics."""
        return f"validation {self.headline(metrics)}"

    def evaluation_line(self, metrics: dict) -> str:
        """What `kerascv-tl evaluate` prints (followed by where the reports are)."""
        return self.headline(metrics)

    # ------------------------------------------------------------------------------------- export and serve

    def serving_resize(self, config: RecipeConfig) -> str:
        """How the serving graph resizes an image, in words (the model card's `input.resize`)."""
        raise NotImplementedError

    def export_steps(
        self, model: keras.Model, class_names: Sequence[str], config: RecipeConfig, card: dict
    ) -> tuple[ServingSteps, NetworkFn]:
        """The task's serving computation for `model` (`kerascv_tl.export.steps`): prepare and finish, built from
        the export details the config and the card give, and the network. Every export format starts here."""
        raise NotImplementedError

    def serving_steps(self, class_names: Sequence[str], details: dict) -> ServingSteps:
        """Prepare and finish rebuilt from an export's details (its model card's `export` section): how
        `load_predictor` runs a LiteRT or ONNX file with the SavedModel's pre- and post-processing."""
        raise NotImplementedError

    def export(
        self,
        model: keras.Model,
        class_names: Sequence[str],
        base_dir: str | Path,
        config: RecipeConfig,
        card: dict,
        version: int | None = None,
        warmup_images: Sequence[bytes] | None = None,
    ) -> Path:
        """Writes a TF Serving SavedModel version folder under `base_dir` (the request limits from
        `config.export`; `warmup_images`, encoded images for its warm-up file); returns it."""
        from kerascv_tl.export.savedmodel import write_savedmodel

        steps, network = self.export_steps(model, class_names, config, card)
        options = {
            "max_image_pixels": config.export.max_image_pixels or config.data.max_image_pixels,
            "max_batch": config.export.max_batch,
        }
        if warmup_images is not None:
            options["warmup_images"] = list(warmup_images)
        return write_savedmodel(model, steps, network, base_dir, class_names, card, version, options)

    def export_agreement(
        self, reference_rows: list[dict], candidate_rows: list[dict], source: Any, paths: Sequence[str]
    ) -> dict[str, float]:
        """How closely an export's result rows follow the Keras model's on the same images (`paths`, files of the
        validation `source`): the figures `export --verify` prints (`kerascv_tl.evaluation.agreement`)."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------------------- predict
    # `kerascv_tl.predict` runs images through a SavedModel's `serving_default` and asks the task what each
    # image's result is (`prediction_rows`); the CLI's CSV, JSONL, text and files are all made from those rows.

    def prediction_rows(self, outputs: dict[str, np.ndarray], card: dict, top_k: int) -> list[dict]:
        """One result dict per image of a `serving_default` batch (`outputs` as numpy arrays, batch first).

        Values are JSON-able (str, int, float, lists and dicts of them) except the numpy arrays a task
        documents (segmentation's class map); `top_k` is used by classification only."""
        raise NotImplementedError

    def prediction_columns(self, card: dict, top_k: int) -> list[str]:
        """The CSV columns after `path`, in order (`prediction_csv` fills exactly these)."""
        raise NotImplementedError

    def prediction_csv(self, row: dict) -> dict[str, Any]:
        """`row` as the values of `prediction_columns` (numbers and strings; lists JSON-encoded)."""
        raise NotImplementedError

    def prediction_files(
        self, row: dict, image_path: Path, name: str, masks_dir: Path | None, annotated_dir: Path | None
    ) -> dict:
        """Writes the task's files for one predicted image file, named after `name` (unique among the images of
        one command); returns the keys to add to its row (the files' paths). Most tasks write none."""
        return {}

    def prediction_line(self, row: dict, as_json: bool = False) -> str:
        """What `kerascv-tl predict` prints for one image without --output: text, or with `as_json` (--json) the
        JSON line of earlier releases, kept for the scripts that read it."""
        raise NotImplementedError

    def evaluate_saved_model(
        self, loaded: Any, folder: Path, card: dict, spec: str, out_dir: Path, batch_size: int
    ) -> dict:
        """Evaluates an exported SavedModel on labelled data; by default only run folders can be evaluated."""
        from kerascv_tl.data.errors import DataError

        raise DataError(
            f"{folder}: evaluate the {self.name} run folder (its SavedModel is checked against it in the tests)"
        )


def _dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = getattr(obj, part)
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
