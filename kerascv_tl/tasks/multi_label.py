"""Multi-label image classification: an image may carry several labels (or none).

Data: a CSV with `path,labels` rows, labels separated by `|` (`kerascv_tl.data.multi_label`). Model:
`classifier(..., activation="sigmoid")`, the classifier with independent per-class probabilities (same layer
names, so the freeze helpers and the schedule treat it as they treat the classifier). Loss: binary
cross-entropy (`train.label_smoothing`); `fit` logs the mean over classes of the area under the
precision-recall curve (`pr_auc`, the default monitor is `val_pr_auc`). Evaluation: per-class average
precision, mean AP, and precision / recall / F1 at one decision threshold tuned on the validation set for
macro F1 (`kerascv_tl.evaluation.multi_label`); the export serves that threshold.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from kerascv_tl.data.multi_label import load_multi_label_sources, multi_label_source_from_spec
from kerascv_tl.data.pipeline import eval_dataset, training_epochs
from kerascv_tl.data.transforms import eval_transform_description
from kerascv_tl.evaluation.multi_label_loop import evaluate_multi_label, evaluate_multi_label_export
from kerascv_tl.export.classifier import classifier_network
from kerascv_tl.export.multi_label_classifier import TUNED, multi_label_details, multi_label_steps
from kerascv_tl.precision import resolve_jit_compile
from kerascv_tl.tasks.base import Task
from kerascv_tl.tasks.classifier import classifier
from kerascv_tl.training.optimizers import make_optimizer

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig, RecipeConfig

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5  # served when a run's metrics hold no tuned threshold


class MultiLabelTask(Task):
    name = "multi_label"
    default_monitor = "val_pr_auc"
    card_metrics = ("map", "macro_f1", "micro_f1", "macro_precision", "macro_recall", "threshold", "num_examples")
    unused_config_keys = (
        ("data.keep_classes", "a multi-label CSV names its classes; drop the columns from the CSV instead"),
        ("data.image_root", "COCO detection images"),
        ("data.sampling", "an image belongs to several classes at once"),
        ("train.class_weight", "an image belongs to several classes at once"),
        ("data.val_image_root", "COCO detection images"),
        ("data.classes", "class names are the CSV's distinct labels"),
        ("data.ignore_index", "a segmentation mask value"),
        ("data.max_boxes", "detection boxes per image"),
        ("data.tfds_data_dir", "multi_label reads CSV files"),
        ("data.tfds_train_split", "multi_label reads CSV files"),
        ("data.tfds_val_split", "multi_label reads CSV files"),
        ("data.augment.mixup_alpha", "not implemented for multi-hot labels"),
        ("data.augment.cutmix_alpha", "not implemented for multi-hot labels"),
        ("head.architecture", "the segmentation head"),
        ("head.anchor_aspect_ratios", "detection anchors"),
        ("head.box_loss", "detection box regression"),
        ("head.group_norm", "detection heads"),
        ("train.cache_features", "not implemented for multi_label"),
        ("train.feature_cache_dir", "not implemented for multi_label"),
        ("train.cache_views", "not implemented for multi_label"),
        ("export.top_k", "the export returns every label over the tuned threshold"),
        ("export.score_threshold", "detection; the decision threshold is tuned on the validation set"),
        ("export.max_detections", "detection"),
        ("export.tta", "segmentation"),
        ("export.iou_threshold", "detection NMS"),
        ("export.probabilities", "segmentation class probabilities"),
    )

    def read_sources(self, data_config: DataConfig, seed, problems=None):
        return load_multi_label_sources(data_config, seed, problems)

    def read_eval_source(self, spec, config: RecipeConfig, class_names):
        return multi_label_source_from_spec(spec, class_names, config.data.format)

    def describe_data(self, train, val) -> str:
        per_class = ", ".join(f"{n} {c}" for n, c in zip(train.class_names, train.positives()))
        return (
            f"data: {len(train)} training and {len(val)} validation images, {train.num_classes} classes "
            f"(training images per class: {per_class}; {int((train.labels.sum(1) == 0).sum())} without a label)"
        )

    def training_data(self, setup):
        config = setup.config
        return training_epochs(setup.train, config.data, config.train.batch_size, config.seed, one_hot=False)

    def validation_data(self, setup):
        return eval_dataset(setup.val, setup.config.data, setup.config.train.batch_size, cache=True, one_hot=False)

    def build_model(self, config: RecipeConfig, backbone, train):
        return classifier(backbone, len(train.class_names), dropout=config.head.dropout, activation="sigmoid")

    def compile(self, model, setup, learning_rate) -> None:
        train_config = setup.config.train
        model.compile(
            optimizer=make_optimizer(train_config, learning_rate),
            loss=keras.losses.BinaryCrossentropy(label_smoothing=train_config.label_smoothing),
            metrics=[keras.metrics.AUC(multi_label=True, num_labels=len(setup.class_names), curve="PR", name="pr_auc")],
            jit_compile=resolve_jit_compile(setup.config.jit_compile),
        )

    def evaluate(
        self,
        model,
        source,
        config: RecipeConfig,
        out_dir,
        class_names,
        batch_size,
        histories=(),
        extra=None,
        run_metrics=None,
    ) -> dict:
        # After training, the threshold is tuned on `source` (the validation set); `kerascv-tl evaluate RUN` on
        # other data keeps the run's tuned threshold, the one its export serves.
        threshold = (run_metrics or {}).get("threshold")
        return evaluate_multi_label(
            model, source, config.data, out_dir, class_names, batch_size, histories, extra, threshold=threshold
        )

    def run_summary(self, setup) -> dict:
        return {"recipe": setup.config.recipe, "backbone": setup.backbone.name, "num_train_examples": len(setup.train)}

    def headline(self, metrics: dict) -> str:
        return f"mAP {_figure(metrics['map'])}, macro F1 {_figure(metrics['macro_f1'])} at {metrics['threshold']:.2f}"

    def result_line(self, metrics: dict) -> str:
        return (
            f"validation mAP: {_figure(metrics['map'])}  macro F1: {_figure(metrics['macro_f1'])}  micro F1: "
            f"{_figure(metrics['micro_f1'])}  (threshold {metrics['threshold']:.2f}, tuned on the validation set)"
        )

    def evaluation_line(self, metrics: dict) -> str:
        return (
            f"mAP: {_figure(metrics['map'])}  macro F1: {_figure(metrics['macro_f1'])} at threshold "
            f"{metrics['threshold']:.2f} on {metrics['num_examples']} images"
        )

    def serving_resize(self, config: RecipeConfig) -> str:
        return eval_transform_description(config.data.image_size, config.data.crop_fraction)

    def export_steps(self, model, class_names, config: RecipeConfig, card):
        threshold = card.get("metrics", {}).get("threshold")
        source = TUNED
        if threshold is None:
            log.warning("the run's metrics hold no tuned threshold; the export serves %.2f", DEFAULT_THRESHOLD)
            threshold, source = DEFAULT_THRESHOLD, "default (the run's metrics hold no tuned threshold)"
        details = multi_label_details(model, class_names, float(threshold), config.data.crop_fraction, source)
        return multi_label_steps(class_names, details), classifier_network(model)

    def serving_steps(self, class_names, details):
        return multi_label_steps(class_names, details)

    def export_agreement(self, reference_rows, candidate_rows, source, paths):
        """The fraction of images given the same label set, and the largest probability difference."""
        same = [set(r["labels"]) == set(c["labels"]) for r, c in zip(reference_rows, candidate_rows)]
        largest = max(
            (
                abs(p - c["probabilities"][k])
                for r, c in zip(reference_rows, candidate_rows)
                for k, p in r["probabilities"].items()
            ),
            default=0.0,
        )
        return {"label_set_agreement": float(np.mean(same)) if same else 0.0, "max_probability_difference": largest}

    def prediction_rows(self, outputs, card: dict, top_k: int) -> list[dict]:
        """Per image: `labels` (the classes at or above the exported `threshold`, most probable first), their
        `scores`, the `threshold`, and `probabilities` ({class name: probability} for every class, label order).
        """
        names = card["labels"]
        threshold = float(card.get("export", {}).get("threshold", DEFAULT_THRESHOLD))
        rows = []
        for probabilities, above in zip(outputs["probabilities"], outputs["above_threshold"]):
            order = [i for i in np.argsort(-probabilities, kind="stable") if above[i]]
            rows.append(
                {
                    "labels": [names[i] for i in order],
                    "scores": [round(float(probabilities[i]), 6) for i in order],
                    "threshold": threshold,
                    "probabilities": {n: round(float(p), 6) for n, p in zip(names, probabilities)},
                }
            )
        return rows

    def prediction_columns(self, card: dict, top_k: int) -> list[str]:
        return ["labels", "threshold"] + [f"score_{name}" for name in card["labels"]]

    def prediction_csv(self, row: dict) -> dict:
        # ";" joins the labels so that a spreadsheet shows them in one cell; the JSONL output keeps the list.
        values = {"labels": ";".join(row["labels"]), "threshold": row["threshold"]}
        values.update({f"score_{name}": p for name, p in row["probabilities"].items()})
        return values

    def prediction_line(self, row: dict, as_json: bool = False) -> str:
        path, labels, scores, threshold = row.get("path"), row["labels"], row["scores"], row["threshold"]
        if as_json:
            legacy = {"image": path, **{k: row[k] for k in ("labels", "scores", "threshold", "probabilities")}}
            return json.dumps(legacy)
        if labels:
            return f"{path}: " + ", ".join(f"{n} ({s:.3f})" for n, s in zip(labels, scores))
        best = max(row["probabilities"].items(), key=lambda item: item[1])
        return f"{path}: no label at or above the threshold {threshold:.2f} (highest: {best[0]} {best[1]:.3f})"

    def evaluate_saved_model(
        self, loaded: Any, folder: Path, card: dict, spec: str, out_dir: Path, batch_size: int
    ) -> dict:
        source = multi_label_source_from_spec(spec, card["labels"])
        return evaluate_multi_label_export(loaded, source, out_dir, batch_size, card)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
