"""Image classification: one label per image, softmax head, cross-entropy, accuracy / top-5 / per-class report.

Data: class-per-folder trees, CSV files (path,label) or tfds:NAME. The model is `classifier()`; with
`train.cache_features` the frozen-backbone phase trains the head alone on cached embeddings (a linear probe
in seconds) and the head's layers are the classifier's, so the exported model is still image -> label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from kerascv_tl.data.class_balance import balanced_cached_data, source_class_weights
from kerascv_tl.data.keep_classes import keep_classes
from kerascv_tl.data.pipeline import eval_dataset, training_epochs
from kerascv_tl.data.readers import classification_source_from_spec, read_classification_sources
from kerascv_tl.data.transforms import eval_transform_description
from kerascv_tl.evaluation.agreement import label_agreement
from kerascv_tl.evaluation.classification_loop import evaluate_classifier, evaluate_classifier_export
from kerascv_tl.export.classifier import classifier_details, classifier_network, classifier_steps
from kerascv_tl.precision import resolve_jit_compile
from kerascv_tl.tasks.base import Task, TaskSetup
from kerascv_tl.tasks.classifier import classifier, feature_extractor, head_model
from kerascv_tl.training.feature_cache import cached_feature_data
from kerascv_tl.training.optimizers import LearningRate, make_optimizer

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig, RecipeConfig, TrainConfig

TOP5_MIN_CLASSES = 5
RECALLS_SHOWN = 10  # an imbalanced report lists every class's recall up to this many classes, else the lowest


def compile_classifier(
    model: keras.Model,
    train_config: TrainConfig,
    learning_rate: LearningRate,
    num_classes: int,
    jit_compile: bool | str = "auto",
) -> None:
    """Cross-entropy (with `train.label_smoothing`), accuracy and, from 5 classes, top-5 accuracy.

    `jit_compile`: the config value (true, false, auto); see `kerascv_tl.precision.resolve_jit_compile`.
    A mixed_float16 model gets Keras' LossScaleOptimizer around the optimizer from `model.compile` itself."""
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if num_classes >= TOP5_MIN_CLASSES:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(
        optimizer=make_optimizer(train_config, learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train_config.label_smoothing),
        metrics=metrics,
        jit_compile=resolve_jit_compile(jit_compile),
    )


def read_classification_source(
    spec: str, class_names: Sequence[str] | None, tfds_split: str = "test", tfds_data_dir: str | None = None
):
    """A labelled source for evaluation: a folder, a CSV, or tfds:NAME[:SPLIT]."""
    if spec.startswith("tfds:") and spec.count(":") == 2:
        _, name, tfds_split = spec.split(":")
        spec = f"tfds:{name}"
    return classification_source_from_spec(
        spec, class_names=class_names, tfds_split=tfds_split, tfds_data_dir=tfds_data_dir
    )


def _imbalanced_figures(metrics: dict, colon: str, separator: str = ", ") -> str:
    """Macro F1 and balanced accuracy: what a report leads with when the validation classes are imbalanced (an
    accuracy there mostly measures the largest classes)."""
    return (
        f"macro F1{colon}{metrics['macro_f1']:.4f}{separator}balanced accuracy{colon}{metrics['balanced_accuracy']:.4f}"
    )


def _recalls(metrics: dict) -> str:
    """Recall of every class, or past RECALLS_SHOWN classes of the lowest ones (the classes an imbalance hurts)."""
    rows = [(name, row["recall"]) for name, row in metrics.get("per_class", {}).items() if row["support"] > 0]
    if len(rows) <= RECALLS_SHOWN:
        return "recall per class: " + ", ".join(f"{name} {recall:.4f}" for name, recall in rows)
    lowest = sorted(rows, key=lambda pair: pair[1])[:RECALLS_SHOWN]
    shown = ", ".join(f"{name} {recall:.4f}" for name, recall in lowest)
    return f"lowest recall ({RECALLS_SHOWN} of {len(rows)} classes): {shown}"


class ClassificationTask(Task):
    name = "classification"
    default_monitor = "val_accuracy"
    evaluation_loop = staticmethod(evaluate_classifier)
    card_metrics = (
        "accuracy",
        "top5_accuracy",
        "balanced_accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "num_examples",
    )
    keras_hub_task = "ImageClassifier"  # model.preset: a KerasHub image classifier (its backbone and class rows)
    unused_config_keys = (
        ("data.image_root", "COCO detection images"),
        ("data.val_image_root", "COCO detection images"),
        ("data.classes", "class names come from the folders or the CSV labels"),
        ("data.ignore_index", "a segmentation mask value"),
        ("data.max_boxes", "detection boxes per image"),
        ("head.architecture", "the segmentation head"),
        ("head.anchor_aspect_ratios", "detection anchors"),
        ("head.box_loss", "detection box regression"),
        ("head.group_norm", "detection heads"),
        ("export.score_threshold", "detection"),
        ("export.max_detections", "detection"),
        ("export.iou_threshold", "detection NMS"),
        ("export.probabilities", "segmentation class probabilities"),
        ("export.tta", "segmentation"),
    )

    def read_sources(self, data_config: DataConfig, seed, problems=None):
        return read_classification_sources(data_config, seed, problems)

    def read_eval_source(self, spec, config: RecipeConfig, class_names):
        if config.data.keep_classes is None:
            return read_classification_source(spec, class_names, config.data.tfds_val_split, config.data.tfds_data_dir)
        # The data holds more classes than the run: read them all, keep the run's (in the run's order).
        source = read_classification_source(spec, None, config.data.tfds_val_split, config.data.tfds_data_dir)
        return keep_classes(source, class_names)

    def describe_data(self, train, val) -> str:
        return (
            f"data: {len(train)} training and {len(val)} validation images, {train.num_classes} classes "
            f"{train.class_names}"
        )

    def training_data(self, setup):
        config = setup.config
        weights = source_class_weights(setup.train, config.train.class_weight)
        return training_epochs(setup.train, config.data, config.train.batch_size, config.seed, class_weights=weights)

    def validation_data(self, setup):
        return eval_dataset(setup.val, setup.config.data, setup.config.train.batch_size, cache=True)

    def build_model(self, config: RecipeConfig, backbone, train):
        return classifier(backbone, len(train.class_names), dropout=config.head.dropout)

    def compile(self, model, setup, learning_rate) -> None:
        compile_classifier(model, setup.config.train, learning_rate, len(setup.class_names), setup.config.jit_compile)

    def head_phase(self, setup: TaskSetup, train_data, val_data):
        if not setup.config.train.cache_features:
            return setup.model, train_data, val_data
        config = setup.config
        cached_train, cached_val = cached_feature_data(
            feature_extractor(setup.model), setup.backbone.info(), setup.train, setup.val, config
        )
        weights = source_class_weights(setup.train, config.train.class_weight)
        balanced = config.data.sampling == "balanced"
        cached_train = balanced_cached_data(cached_train, weights, balanced, config.seed, config.train.batch_size)
        return head_model(setup.model), cached_train, cached_val

    def run_summary(self, setup) -> dict:
        summary = {
            "recipe": setup.config.recipe,
            "backbone": setup.backbone.name,
            "num_train_examples": len(setup.train),
        }
        if setup.start is not None:
            summary["start"] = setup.start.summary()
        return summary

    def headline(self, metrics: dict) -> str:
        if metrics.get("imbalanced"):
            return f"{_imbalanced_figures(metrics, ' ')}, accuracy {metrics['accuracy']:.4f}"
        return f"accuracy {metrics['accuracy']:.4f}"

    def result_line(self, metrics: dict) -> str:
        top5 = f"  top-5: {metrics['top5_accuracy']:.4f}" if "top5_accuracy" in metrics else ""
        if metrics.get("imbalanced"):
            figures = _imbalanced_figures(metrics, ": ", "  ")
            return f"validation {figures}  accuracy: {metrics['accuracy']:.4f}{top5}  {_recalls(metrics)}"
        return f"validation accuracy: {metrics['accuracy']:.4f}{top5}"

    def evaluation_line(self, metrics: dict) -> str:
        if metrics.get("imbalanced"):
            figures = _imbalanced_figures(metrics, ": ", "  ")
            return (
                f"{figures}  accuracy: {metrics['accuracy']:.4f} on {metrics['num_examples']} images "
                f"(imbalanced classes)  {_recalls(metrics)}"
            )
        return f"accuracy: {metrics['accuracy']:.4f} on {metrics['num_examples']} images"

    def serving_resize(self, config: RecipeConfig) -> str:
        return eval_transform_description(config.data.image_size, config.data.crop_fraction)

    def export_steps(self, model, class_names, config: RecipeConfig, card):
        details = classifier_details(model, class_names, config.data.crop_fraction, config.export.top_k)
        return classifier_steps(class_names, details), classifier_network(model)

    def serving_steps(self, class_names, details):
        return classifier_steps(class_names, details)

    def export_agreement(self, reference_rows, candidate_rows, source, paths):
        truths = None
        if source.paths is not None:
            by_path = {p: source.class_names[int(i)] for p, i in zip(source.paths, source.labels)}
            truths = [by_path.get(p) for p in paths]
        return label_agreement(reference_rows, candidate_rows, truths)

    def prediction_rows(self, outputs, card: dict, top_k: int) -> list[dict]:
        """Per image: `labels` (the `top_k` most probable class names, best first) and their `scores`.

        Ranked from the served `probabilities` (all classes) rather than the served top-k, so that any k up to
        the number of classes can be asked for; a stable sort keeps `tf.math.top_k`'s order on ties."""
        names = card["labels"]
        probabilities = outputs["probabilities"]
        k = min(top_k, probabilities.shape[-1])
        rows = []
        for image_probabilities in probabilities:
            best = np.argsort(-image_probabilities, kind="stable")[:k]
            rows.append(
                {
                    "labels": [names[i] for i in best],
                    "scores": [round(float(image_probabilities[i]), 6) for i in best],
                }
            )
        return rows

    def prediction_columns(self, card: dict, top_k: int) -> list[str]:
        k = min(top_k, len(card["labels"]))
        return [f"{kind}_{rank}" for rank in range(1, k + 1) for kind in ("label", "score")]

    def prediction_csv(self, row: dict) -> dict:
        values = {}
        for rank, (label, score) in enumerate(zip(row["labels"], row["scores"]), start=1):
            values[f"label_{rank}"], values[f"score_{rank}"] = label, score
        return values

    def prediction_line(self, row: dict, as_json: bool = False) -> str:
        if as_json:
            return json.dumps({"image": row.get("path"), "classes": row["labels"], "scores": row["scores"]})
        return f"{row.get('path')}: " + ", ".join(f"{n} ({s:.3f})" for n, s in zip(row["labels"], row["scores"]))

    def evaluate_saved_model(
        self, loaded: Any, folder: Path, card: dict, spec: str, out_dir: Path, batch_size: int
    ) -> dict:
        source = read_classification_source(spec, card["labels"])
        return evaluate_classifier_export(loaded, source, card["labels"], out_dir, batch_size, card)

    def explain(self, model, source, config: RecipeConfig, out_dir, class_names, count: int) -> dict:
        """Grad-CAM overlays of the `count` most confident mistakes and `count` correct images per class
        (`kerascv_tl.evaluation.explain`)."""
        from kerascv_tl.evaluation.explain import explain_classifier

        # Gradients through the whole backbone cost several times a forward pass: smaller batches than training's.
        batch_size = max(1, min(config.train.batch_size, 16))
        return explain_classifier(model, source, config.data, out_dir, class_names, count, batch_size)
