"""Semantic segmentation: KerasHub DeepLabV3+ or SegFormer on a registry backbone, IoU at original resolution.

Data: a folder with images/ and masks/ (matched by file stem), the Penn-Fudan folder, or tfds:NAME with a mask
feature. Training crops image and mask jointly (`data.augment.random_resized_crop`, `min_crop_area`) and flips
them (`data.augment.flip`); Keras' MeanIoU at model resolution is what `fit` logs (`val_mean_iou`), while the
reported metrics are computed at each image's original size, as the exported SavedModel returns them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from kerascv_tl.data.class_balance import with_pixel_weights
from kerascv_tl.data.epochs import EpochData
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.readers import read_segmentation_sources, segmentation_source_from_spec
from kerascv_tl.data.segmentation_pipeline import segmentation_class_weights, segmentation_dataset
from kerascv_tl.evaluation.agreement import pixel_agreement
from kerascv_tl.evaluation.segmentation_loop import evaluate_segmenter
from kerascv_tl.export.segmenter import segmenter_details, segmenter_network, segmenter_steps
from kerascv_tl.precision import resolve_jit_compile
from kerascv_tl.tasks.base import Task
from kerascv_tl.tasks.segmenter import mean_iou_metric, segmentation_loss, segmenter
from kerascv_tl.training.fit import steps_per_epoch
from kerascv_tl.training.optimizers import LearningRate, make_optimizer
from kerascv_tl.utils.io import atomic_path

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig, RecipeConfig, TrainConfig

PER_CLASS_SHOWN = 6


def compile_segmenter(
    model: keras.Model,
    train_config: TrainConfig,
    learning_rate: LearningRate,
    num_classes: int,
    jit_compile: bool | str = "auto",
) -> None:
    """Pixel-wise cross-entropy and Keras' MeanIoU, both ignoring IGNORE_INDEX; the config's optimizer."""
    model.compile(
        optimizer=make_optimizer(train_config, learning_rate),
        loss=segmentation_loss(),
        metrics=[mean_iou_metric(num_classes)],
        jit_compile=resolve_jit_compile(jit_compile),
    )


class SegmentationTask(Task):
    name = "segmentation"
    default_monitor = "val_mean_iou"
    card_metrics = ("miou", "per_class_iou", "pixel_accuracy", "fw_iou", "num_images")
    keras_hub_task = "ImageSegmenter"
    exports_presets = True
    unused_config_keys = (
        ("data.crop_fraction", "the whole image is resized to image_size"),
        ("data.cache", "segmentation decodes each epoch"),
        ("data.sampling", "an image holds pixels of several classes; use train.class_weight"),
        ("data.max_boxes", "detection boxes per image"),
        ("data.image_root", "COCO detection images"),
        ("data.val_image_root", "COCO detection images"),
        ("data.augment.rand_augment", "not mask-aware here"),
        ("data.augment.mixup_alpha", "not mask-aware here"),
        ("data.augment.cutmix_alpha", "not mask-aware here"),
        ("head.dropout", "the segmentation heads have no dropout setting"),
        ("head.anchor_aspect_ratios", "detection anchors"),
        ("head.box_loss", "detection box regression"),
        ("head.group_norm", "detection heads"),
        ("train.label_smoothing", "not applied to the pixel-wise loss"),
        ("train.cache_features", "classification only"),
        ("train.feature_cache_dir", "classification only"),
        ("train.cache_views", "classification only"),
        ("export.top_k", "classification"),
        ("export.score_threshold", "detection"),
        ("export.max_detections", "detection"),
        ("export.iou_threshold", "detection NMS"),
    )

    def read_sources(self, data_config: DataConfig, seed, problems=None):
        return read_segmentation_sources(data_config, seed, problems)

    def read_eval_source(self, spec, config: RecipeConfig, class_names):
        source = segmentation_source_from_spec(spec, config.data, tfds_split=config.data.tfds_val_split)
        if list(source.class_names) != list(class_names):
            raise DataError(f"{spec}: classes {source.class_names} differ from the run's {list(class_names)}")
        return source

    def describe_data(self, train, val) -> str:
        return f"data: {len(train)} training and {len(val)} validation image/mask pairs, {train.num_classes} classes"

    def training_data(self, setup) -> EpochData:
        config = setup.config
        data, batch = config.data, config.train.batch_size
        augment = data.augment

        weights = segmentation_class_weights(setup.train, config.train.class_weight)

        def epoch(e: int):
            ds = segmentation_dataset(
                setup.train,
                data.image_size,
                batch,
                True,
                config.seed,
                e,
                flip=augment.flip,
                random_crop=augment.random_resized_crop,
                min_crop_area=augment.min_crop_area,
            )
            return ds if weights is None else with_pixel_weights(ds, weights)

        return EpochData(epoch, steps=steps_per_epoch(len(setup.train), batch))

    def validation_data(self, setup):
        config = setup.config
        return segmentation_dataset(
            setup.val, config.data.image_size, config.train.batch_size, False, config.seed
        ).cache()

    def evaluate(self, model, source, config, out_dir, class_names, batch_size, histories=(), extra=None, **_):
        """The evaluation loop with the export's test-time augmentation (`export.tta`), so the metrics score the
        class maps the export serves."""
        tta = config.export.tta
        return evaluate_segmenter(model, source, config.data, out_dir, class_names, batch_size, histories, extra, tta)

    def build_model(self, config: RecipeConfig, backbone, train):
        return segmenter(backbone, len(train.class_names), architecture=config.head.architecture)

    def compile(self, model, setup, learning_rate) -> None:
        compile_segmenter(model, setup.config.train, learning_rate, len(setup.class_names), setup.config.jit_compile)

    def run_summary(self, setup) -> dict:
        return {**super().run_summary(setup), "architecture": setup.model.name}

    def headline(self, metrics: dict) -> str:
        return f"miou {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f}"

    def result_line(self, metrics: dict) -> str:
        shown = list(metrics["per_class_iou"].items())[:PER_CLASS_SHOWN]
        per_class = ", ".join(f"{name} {iou:.4f}" for name, iou in shown if iou is not None)
        return (
            f"validation miou: {metrics['miou']:.4f}  pixel accuracy: {metrics['pixel_accuracy']:.4f}  "
            f"fw_iou: {metrics['fw_iou']:.4f}  per class: {per_class}"
        )

    def evaluation_line(self, metrics: dict) -> str:
        return f"{self.result_line(metrics)} on {metrics['num_images']} images"

    def serving_resize(self, config: RecipeConfig) -> str:
        size = config.data.image_size
        return f"stretch to {size}x{size} (bilinear, antialiased); logits resized back to the original size"

    def export_steps(self, model, class_names, config: RecipeConfig, card):
        details = segmenter_details(model, class_names, config.export.probabilities, config.export.tta)
        return segmenter_steps(class_names, details), segmenter_network(model, config.export.tta)

    def serving_steps(self, class_names, details):
        return segmenter_steps(class_names, details)

    def export_agreement(self, reference_rows, candidate_rows, source, paths):
        return pixel_agreement(reference_rows, candidate_rows)

    def prediction_rows(self, outputs, card: dict, top_k: int) -> list[dict]:
        """Per image: `width`, `height`, `class_fractions` ({class name: fraction of the image's pixels} for every
        class, label order) and `mask`, the class ids as a numpy int32 array [height, width] at the original
        resolution (files and the CLI's CSV/JSONL leave the array out: it is written as a PNG instead)."""
        names = card["labels"]
        rows = []
        for class_map, height, width in zip(outputs["class_map"], outputs["height"], outputs["width"]):
            mask = class_map[: int(height), : int(width)]
            counts = np.bincount(mask.ravel(), minlength=len(names))
            rows.append(
                {
                    "width": int(width),
                    "height": int(height),
                    "class_fractions": {n: float(c) / max(mask.size, 1) for n, c in zip(names, counts)},
                    "mask": mask,
                }
            )
        return rows

    def prediction_columns(self, card: dict, top_k: int) -> list[str]:
        return ["mask_file", "width", "height"] + [f"fraction_{name}" for name in card["labels"]]

    def prediction_csv(self, row: dict) -> dict:
        values = {"mask_file": row.get("mask_file", ""), "width": row["width"], "height": row["height"]}
        values.update({f"fraction_{name}": f for name, f in row["class_fractions"].items()})
        return values

    def prediction_files(self, row, image_path, name, masks_dir, annotated_dir) -> dict:
        """`masks_dir`/<name>_mask.png: the class ids as a greyscale PNG (8-bit; 16-bit past 256 classes), and
        `annotated_dir`/<name>_segmentation.png: the class map coloured over the image."""
        from PIL import Image

        from kerascv_tl.data.decode import read_image_file
        from kerascv_tl.evaluation.segmentation import write_overlay_png

        written = {}
        num_classes = len(row["class_fractions"])
        if masks_dir is not None:
            dtype = np.uint8 if num_classes <= 256 else np.uint16
            target = Path(masks_dir) / f"{name}_mask.png"
            with atomic_path(target, suffix=".png") as tmp:
                Image.fromarray(row["mask"].astype(dtype)).save(tmp, format="PNG")
            written["mask_file"] = str(target)
        if annotated_dir is not None:
            target = Path(annotated_dir) / f"{name}_segmentation.png"
            written["overlay"] = str(write_overlay_png(read_image_file(image_path), row["mask"], num_classes, target))
        return written

    def prediction_line(self, row: dict, as_json: bool = False) -> str:
        present = {name: fraction for name, fraction in row["class_fractions"].items() if fraction}
        if as_json:
            legacy = {
                "image": row.get("path"),
                "overlay": row.get("overlay"),
                "size": [row["width"], row["height"]],
                "class_fractions": {name: round(fraction, 4) for name, fraction in present.items()},
            }
            return json.dumps(legacy)
        where = f" -> {row['overlay']}" if "overlay" in row else ""
        return f"{row.get('path')}: {row['width']}x{row['height']}{where}\n  " + ", ".join(
            f"{name} {fraction:.1%}" for name, fraction in present.items()
        )
