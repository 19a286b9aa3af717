"""Semantic segmentation recipes: DeepLabV3 or SegFormer on a registry backbone.

Same two phases as detection (`recipes.phases`). Training monitors `val_loss` or `val_mean_iou` (Keras'
MeanIoU at model resolution); the reported metrics are computed at each validation image's ORIGINAL
resolution, with logits resized back the way the exported SavedModel does (`class_map_at`).
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.data import segmentation as seg
from kerascv_tl.data.epochs import EpochData
from kerascv_tl.evaluation.segmentation import ConfusionAccumulator, plot_segmentation_grid, segmentation_metrics
from kerascv_tl.precision import precision_scope, resolve_jit_compile
from kerascv_tl.recipes.classification import backbone_from_config, backbone_info
from kerascv_tl.recipes.phases import fit_head_then_backbone
from kerascv_tl.recipes.runner import (RunFolder, TaskSetup, checked_sources, make_optimizer, run_summary,
                                       steps_per_epoch, write_model_card, write_report)
from kerascv_tl.tasks.segmenter import mean_iou_metric, segmentation_loss, segmenter
from kerascv_tl.utils.io import atomic_write_json

log = logging.getLogger(__name__)

NUM_OVERLAYS = 6


SegmentationSetup = TaskSetup


def setup(config, run: RunFolder, strategy) -> SegmentationSetup:
    train, val = checked_sources(config, run)
    log.info("data: %d training and %d validation image/mask pairs, %d classes", len(train), len(val),
             train.num_classes)
    run.save_class_names(train.class_names)
    # The model is built under the config's dtype policy, which is put back afterwards (kerascv_tl/precision.py).
    with strategy.scope(), precision_scope(config.precision):
        backbone = backbone_from_config(config)
        model = segmenter(backbone, train.num_classes, architecture=config.head.architecture)
    atomic_write_json(run / "backbone.json", backbone_info(backbone))
    return SegmentationSetup(config, run, train, val, backbone, model, strategy)


def compile_segmenter(model: keras.Model, train_config, learning_rate, num_classes: int,
                      jit_compile: bool | str = "auto") -> None:
    model.compile(optimizer=make_optimizer(train_config, learning_rate), loss=segmentation_loss(),
                  metrics=[mean_iou_metric(num_classes)], jit_compile=resolve_jit_compile(jit_compile))


def run(s: SegmentationSetup, verbose: int = 2) -> None:
    config = s.config
    size, batch = config.data.image_size, config.train.batch_size
    train_data = EpochData(lambda epoch: seg.segmentation_dataset(s.train, size, batch, True, config.seed, epoch),
                           steps=steps_per_epoch(len(s.train), batch))
    val_data = seg.segmentation_dataset(s.val, size, batch, False, config.seed).cache()

    def compile_model(model, learning_rate):
        compile_segmenter(model, config.train, learning_rate, s.train.num_classes, config.jit_compile)

    fit_head_then_backbone(config, s.run, s.model, s.strategy, train_data, val_data, compile_model, verbose)


def predict_class_maps(model: keras.Model, source: seg.SegmentationSource, image_size: int, batch_size: int = 8):
    """Yields (image uint8 [H, W, 3], ground truth [H, W], prediction int32 [H, W]) at original resolution."""
    infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    pending = []

    def flush():
        images = tf.stack([seg.resize_image(image, image_size) for image, _ in pending])
        logits = infer(images)
        for (image, mask), one in zip(pending, tf.unstack(logits)):
            yield image, mask, seg.class_map_at(one, image.shape[0], image.shape[1]).numpy()
        pending.clear()

    for _, image, mask in seg.segmentation_examples(source):
        pending.append((image, mask))
        if len(pending) == batch_size:
            yield from flush()
    if pending:
        yield from flush()


def evaluate_segmenter(model, source, data_config, out_dir, class_names, batch_size=8, histories=(), extra=None) -> dict:
    accumulator = ConfusionAccumulator(len(class_names))
    samples = []
    for image, mask, prediction in predict_class_maps(model, source, data_config.image_size, batch_size):
        accumulator.update(mask, prediction)
        if len(samples) < NUM_OVERLAYS:
            samples.append((image, mask, prediction))
    metrics = segmentation_metrics(accumulator.matrix, class_names)
    metrics["num_images"] = len(source)
    out = RunFolder(out_dir).root
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "confusion_matrix.json", {"labels": list(class_names),
                                                      "matrix": accumulator.matrix.astype(np.int64).tolist()})
    plot_segmentation_grid(samples, class_names, out / "segmentations.png")
    return write_report(out, metrics, histories, extra)


def finish(s: SegmentationSetup) -> dict:
    s.run.save_model(s.model)
    extra = {**run_summary(s, "segmentation"), "architecture": s.model.name}
    metrics = evaluate_segmenter(s.model, s.val, s.config.data, s.run.root, s.class_names, s.config.train.batch_size,
                                 s.run.history_files(), extra)
    write_model_card(s, metrics)
    return metrics
