"""Object detection: KerasHub RetinaNet on a registry backbone, COCO mAP from pycocotools.

Data: COCO instances JSON, Pascal VOC, YOLO or the Penn-Fudan folder; images are letterboxed (the serving
graph does the same) and boxes stay in "xyxy" pixels. Training augments with a jittered letterbox scale
(`data.augment.random_resized_crop`) and horizontal flips (`data.augment.flip`); the optimizer clips the
global-batch gradient, because the focal and box losses are large while the new heads are random.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from kerascv_tl.config import BOX_LOSSES
from kerascv_tl.data.detection_pipeline import detection_dataset
from kerascv_tl.data.epochs import EpochData
from kerascv_tl.data.readers import detection_source_from_spec, read_detection_sources
from kerascv_tl.evaluation.agreement import box_agreement
from kerascv_tl.evaluation.detection_loop import evaluate_detector
from kerascv_tl.export.detector import detector_details, detector_network, detector_steps
from kerascv_tl.precision import resolve_jit_compile
from kerascv_tl.tasks.anchors import fitted_aspect_ratios
from kerascv_tl.tasks.base import Task
from kerascv_tl.tasks.detector import detector
from kerascv_tl.training.fit import steps_per_epoch
from kerascv_tl.training.optimizers import LearningRate, make_optimizer
from kerascv_tl.utils.io import atomic_path

if TYPE_CHECKING:
    from kerascv_tl.config import DataConfig, RecipeConfig, TrainConfig
    from kerascv_tl.data.records import DetectionSource

GLOBAL_CLIPNORM = 10.0
SMOOTH_L1_BETA = 0.1

_IMAGES_ONLY = "detection reads image files with box annotations"


def compile_detector(
    model: keras.Model,
    train_config: TrainConfig,
    learning_rate: LearningRate,
    jit_compile: bool | str = "auto",
    box_loss: str = "smooth_l1",
) -> None:
    """RetinaNet's focal loss and the `box_loss` (`head.box_loss`) on the box deltas; the config's optimizer,
    clipping the global-batch gradient.

    smooth_l1 is Huber(delta=0.1) / 0.1, the reference RetinaNet's smooth L1 with beta 0.1 (slope 1 once a delta is
    0.1 off); huber is KerasHub's default, Huber with delta 1, whose slope is the error itself below 1."""
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"unknown box loss {box_loss!r}; expected one of {BOX_LOSSES}")
    losses = {}
    if box_loss == "smooth_l1":
        losses = {
            "box_loss": keras.losses.Huber(delta=SMOOTH_L1_BETA, reduction="sum"),
            "loss_weights": {"bbox_regression": 1.0 / SMOOTH_L1_BETA, "cls_logits": 1.0},
        }
    model.compile(
        optimizer=make_optimizer(train_config, learning_rate, global_clipnorm=GLOBAL_CLIPNORM),
        jit_compile=resolve_jit_compile(jit_compile),
        **losses,
    )


def anchor_aspect_ratios(config: RecipeConfig, train: DetectionSource) -> list[float]:
    """`head.anchor_aspect_ratios`, or for auto the ratios fitted to the training boxes."""
    ratios = config.head.anchor_aspect_ratios
    if ratios != "auto":
        return list(ratios)
    return fitted_aspect_ratios(record.boxes for record in train.records)


class DetectionTask(Task):
    name = "detection"
    default_monitor = "val_loss"
    evaluation_loop = staticmethod(evaluate_detector)
    card_metrics = ("map_50_95", "map_50", "map_75", "ar_100", "num_images")
    keras_hub_task = "ObjectDetector"
    exports_presets = True
    litert_int8_refusal = (
        "8-bit activations through RetinaNet's in-graph box decoding (anchor offsets, exp of the size deltas) "
        "leave boxes tens of pixels off; use --quantize float16 or dynamic and check it with --verify (docs/deploy.md)"
    )
    unused_config_keys = (
        ("data.crop_fraction", "detection letterboxes the whole image"),
        ("data.cache", "detection decodes each epoch"),
        ("data.sampling", "an image holds boxes of several classes; focal loss already down-weights the easy ones"),
        ("train.class_weight", "focal loss already down-weights the many easy (mostly background) anchors"),
        ("data.shuffle_buffer", "the whole file list is shuffled"),
        ("data.tfds_data_dir", _IMAGES_ONLY),
        ("data.tfds_train_split", _IMAGES_ONLY),
        ("data.tfds_val_split", _IMAGES_ONLY),
        ("data.ignore_index", "a segmentation mask value"),
        ("data.augment.min_crop_area", "detection's random crop is a letterbox scale jitter of 0.8-1.2"),
        ("data.augment.rand_augment", "not box-aware here"),
        ("data.augment.mixup_alpha", "not box-aware here"),
        ("data.augment.cutmix_alpha", "not box-aware here"),
        ("head.dropout", "RetinaNet's heads have no dropout"),
        ("head.architecture", "the segmentation head"),
        ("train.label_smoothing", "RetinaNet's focal loss"),
        ("train.cache_features", "classification only"),
        ("train.feature_cache_dir", "classification only"),
        ("train.cache_views", "classification only"),
        ("export.top_k", "classification"),
        ("export.probabilities", "segmentation class probabilities"),
        ("export.tta", "segmentation; a detector would need the boxes of both passes merged"),
    )

    def read_sources(self, data_config: DataConfig, seed, problems=None):
        return read_detection_sources(data_config, seed, problems)

    def read_eval_source(self, spec, config: RecipeConfig, class_names):
        return detection_source_from_spec(spec, config.data, class_names)

    def describe_data(self, train, val) -> str:
        boxes = sum(len(r.boxes) for r in train.records)
        return (
            f"data: {len(train.records)} training images ({boxes} boxes), {len(val.records)} validation images, "
            f"{len(train.class_names)} classes"
        )

    def training_data(self, setup) -> EpochData:
        config = setup.config
        data, batch = config.data, config.train.batch_size

        def epoch(e: int):
            return detection_dataset(
                setup.train,
                data.image_size,
                batch,
                True,
                config.seed,
                data.max_boxes,
                e,
                flip=data.augment.flip,
                scale_jitter=data.augment.random_resized_crop,
            )

        return EpochData(epoch, steps=steps_per_epoch(len(setup.train.records), batch))

    def validation_data(self, setup):
        config = setup.config
        return detection_dataset(
            setup.val, config.data.image_size, config.train.batch_size, False, config.seed, config.data.max_boxes
        ).cache()

    def build_model(self, config: RecipeConfig, backbone, train):
        return detector(
            backbone,
            len(train.class_names),
            anchor_aspect_ratios=anchor_aspect_ratios(config, train),
            group_norm=config.head.group_norm,
        )

    def compile(self, model, setup, learning_rate) -> None:
        config = setup.config
        compile_detector(model, config.train, learning_rate, config.jit_compile, config.head.box_loss)

    def run_summary(self, setup) -> dict:
        # Read from the model: a preset start brings its own anchors and heads, whatever the config's defaults say.
        model = setup.model
        heads = {
            "anchor_aspect_ratios": [float(r) for r in model.anchor_generator.aspect_ratios],
            "group_norm": bool(model.use_prediction_head_norm),
        }
        return {**super().run_summary(setup), **heads, "box_loss": setup.config.head.box_loss}

    def headline(self, metrics: dict) -> str:
        return f"map_50 {metrics['map_50']:.4f}, map_50_95 {metrics['map_50_95']:.4f}"

    def result_line(self, metrics: dict) -> str:
        return (
            f"validation map_50_95: {metrics['map_50_95']:.4f}  map_50: {metrics['map_50']:.4f}  "
            f"map_75: {metrics['map_75']:.4f}  ar_100: {metrics['ar_100']:.4f}"
        )

    def evaluation_line(self, metrics: dict) -> str:
        return (
            f"map_50_95: {metrics['map_50_95']:.4f}  map_50: {metrics['map_50']:.4f} on {metrics['num_images']} images"
        )

    def serving_resize(self, config: RecipeConfig) -> str:
        size = config.data.image_size
        return f"letterbox: longer side to {size}, pad bottom/right to {size}x{size}; boxes map back to original pixels"

    def export_steps(self, model, class_names, config: RecipeConfig, card):
        e = config.export
        details = detector_details(model, e.score_threshold, e.max_detections, e.iou_threshold)
        return detector_steps(class_names, details), detector_network(model)

    def serving_steps(self, class_names, details):
        return detector_steps(class_names, details)

    def export_agreement(self, reference_rows, candidate_rows, source, paths):
        return box_agreement(reference_rows, candidate_rows)

    def prediction_rows(self, outputs, card: dict, top_k: int) -> list[dict]:
        """Per image: `num_boxes` and `boxes`, a list of {"label", "score", "box": [x0, y0, x1, y1]} in the
        original image's pixels (the export's score threshold, NMS and box limit applied), best first."""
        rows = []
        for i, count in enumerate(outputs["num_detections"]):
            n = int(count)
            boxes = [
                {"label": name.decode(), "score": round(float(score), 6), "box": [round(float(v), 2) for v in box]}
                for box, name, score in zip(
                    outputs["boxes"][i][:n], outputs["class_names"][i][:n], outputs["scores"][i][:n]
                )
            ]
            rows.append({"num_boxes": n, "boxes": boxes})
        return rows

    def prediction_columns(self, card: dict, top_k: int) -> list[str]:
        return ["num_boxes", "boxes"]

    def prediction_csv(self, row: dict) -> dict:
        # One row per image, also for images without boxes; the boxes cell holds the JSONL output's list.
        return {"num_boxes": row["num_boxes"], "boxes": json.dumps(row["boxes"])}

    def prediction_files(self, row, image_path, name, masks_dir, annotated_dir) -> dict:
        """Draws the boxes onto a copy of the image: `annotated_dir`/<name>_detections.png."""
        if annotated_dir is None:
            return {}
        from PIL import Image, ImageDraw, ImageOps

        with Image.open(image_path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")  # the graph honours EXIF orientation too
        draw = ImageDraw.Draw(image)
        for found in row["boxes"]:
            x0, y0, x1, y1 = found["box"]
            draw.rectangle([x0, y0, x1, y1], outline=(230, 40, 40), width=max(2, image.width // 200))
            draw.text((x0 + 3, y0 + 2), f"{found['label']} {found['score']:.2f}", fill=(230, 40, 40))
        target = Path(annotated_dir) / f"{name}_detections.png"
        with atomic_path(target, suffix=".png") as tmp:
            image.save(tmp)
        return {"annotated": str(target)}

    def prediction_line(self, row: dict, as_json: bool = False) -> str:
        boxes = row["boxes"]
        if as_json:
            detections = [
                {"box_xyxy": [round(v, 1) for v in b["box"]], "class": b["label"], "score": round(b["score"], 4)}
                for b in boxes
            ]
            return json.dumps({"image": row.get("path"), "annotated": row.get("annotated"), "detections": detections})
        where = f" -> {row['annotated']}" if "annotated" in row else ""
        lines = [f"{row.get('path')}: {row['num_boxes']} detection(s){where}"]
        for b in boxes:
            x0, y0, x1, y1 = b["box"]
            lines.append(f"  {b['label']} {b['score']:.3f} at ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f})")
        return "\n".join(lines)
