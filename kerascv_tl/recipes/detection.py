"""Object detection recipes: RetinaNet on a registry backbone.

`feature_extraction`: backbone frozen, the FPN and heads train. `fine_tune`: that warm-up, then the
backbone too (`recipes.phases.fit_head_then_backbone`). The best checkpoint by `train.monitor` (use
val_loss for detection) is kept; COCO metrics come from pycocotools.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from kerascv_tl.data import detection as det
from kerascv_tl.data.epochs import EpochData
from kerascv_tl.evaluation.detection import coco_detection_metrics, plot_detection_grid
from kerascv_tl.precision import precision_scope, resolve_jit_compile
from kerascv_tl.recipes.classification import backbone_from_config, backbone_info
from kerascv_tl.recipes.global_clip import GlobalClipAdam
from kerascv_tl.recipes.phases import fit_head_then_backbone
from kerascv_tl.recipes.runner import (RunFolder, TaskSetup, checked_sources, run_summary, steps_per_epoch,
                                       write_model_card, write_report)
from kerascv_tl.tasks import detector
from kerascv_tl.utils.io import atomic_write_json

log = logging.getLogger(__name__)

EVAL_SCORE_THRESHOLD = 0.05  # low, so COCO mAP sees the whole precision-recall curve
NUM_OVERLAYS = 8


DetectionSetup = TaskSetup


read_source = det.detection_source_from_spec  # what `kerascv-tl evaluate` reads a detection folder with


def setup(config, run: RunFolder, strategy) -> DetectionSetup:
    train, val = checked_sources(config, run)
    boxes = sum(len(r.boxes) for r in train.records)
    log.info("data: %d training images (%d boxes), %d validation images, %d classes", len(train.records), boxes,
             len(val.records), len(train.class_names))
    run.save_class_names(train.class_names)
    # The model is built under the config's dtype policy, which is put back afterwards (kerascv_tl/precision.py).
    with strategy.scope(), precision_scope(config.precision):
        backbone = backbone_from_config(config)
        model = detector(backbone, len(train.class_names))
    atomic_write_json(run / "backbone.json", backbone_info(backbone))
    return DetectionSetup(config, run, train, val, backbone, model, strategy)


def compile_detector(model: keras.Model, learning_rate, jit_compile: bool | str = "auto") -> None:
    # Clipping: RetinaNet's focal and box losses are large while the new heads are random.
    model.compile(optimizer=GlobalClipAdam(learning_rate, global_clipnorm=10.0),
                  jit_compile=resolve_jit_compile(jit_compile))


def run(s: DetectionSetup, verbose: int = 2) -> None:
    config, train_config = s.config, s.config.train
    size, batch = config.data.image_size, train_config.batch_size
    train_data = EpochData(
        lambda epoch: det.detection_dataset(s.train, size, batch, True, config.seed, config.data.max_boxes, epoch),
        steps=steps_per_epoch(len(s.train.records), batch))
    val_data = det.detection_dataset(s.val, size, batch, False, config.seed, config.data.max_boxes).cache()

    def compile_model(model, learning_rate):
        compile_detector(model, learning_rate, config.jit_compile)

    fit_head_then_backbone(config, s.run, s.model, s.strategy, train_data, val_data, compile_model, verbose)


def predict_source(model: keras.Model, source: det.DetectionSource, image_size: int, batch_size: int,
                   score_threshold: float = EVAL_SCORE_THRESHOLD, num_samples: int = NUM_OVERLAYS):
    """Ground truth and predictions per image, in model-input pixels (letterboxing scales boxes
    uniformly and pads bottom/right, so IoU and therefore COCO AP are those of the original pixels)."""
    previous = model.prediction_decoder
    model.prediction_decoder = type(previous)(
        bounding_box_format=previous.bounding_box_format, from_logits=previous.from_logits,
        iou_threshold=previous.iou_threshold, confidence_threshold=score_threshold,
        max_detections=previous.max_detections)
    ground_truth, predictions, samples = [], [], []
    try:
        for images, targets in det.detection_dataset(source, image_size, batch_size, training=False):
            count = int(images.shape[0])
            # Every call gets the same batch size: a short last batch would make Keras retrace with an
            # unknown batch size, which KerasHub's NMS cannot trace ("Expected int32, but got None").
            padded = np.zeros((batch_size, *images.shape[1:]), np.float32)
            padded[:count] = images.numpy()
            out = model.predict(padded, batch_size=batch_size, verbose=0)
            for i in range(count):
                n = int(out["num_detections"][i])
                keep = targets["labels"][i].numpy() >= 0
                gt = {"boxes": targets["boxes"][i].numpy()[keep], "labels": targets["labels"][i].numpy()[keep]}
                pred = {"boxes": np.asarray(out["boxes"][i][:n], np.float32),
                        "scores": np.asarray(out["confidence"][i][:n], np.float32),
                        "labels": np.asarray(out["labels"][i][:n], np.int64)}
                ground_truth.append(gt)
                predictions.append(pred)
                if len(samples) < num_samples:
                    samples.append((np.clip(images[i].numpy(), 0, 255).astype(np.uint8), gt, pred))
    finally:
        model.prediction_decoder = previous
    return ground_truth, predictions, samples


def evaluate_detector(model, source, data_config, out_dir, class_names, batch_size=8, histories=(), extra=None) -> dict:
    ground_truth, predictions, samples = predict_source(model, source, data_config.image_size, batch_size)
    metrics = coco_detection_metrics(ground_truth, predictions, class_names)
    out = RunFolder(out_dir).root
    out.mkdir(parents=True, exist_ok=True)
    plot_detection_grid(samples, class_names, out / "detections.png")
    return write_report(out, metrics, histories, extra)


def finish(s: DetectionSetup) -> dict:
    s.run.save_model(s.model)
    metrics = evaluate_detector(s.model, s.val, s.config.data, s.run.root, s.class_names,
                                s.config.train.batch_size, s.run.history_files(), run_summary(s, "detection"))
    write_model_card(s, metrics)
    return metrics
