"""KerasHub's RetinaNet detector with its loss normalised over the GLOBAL batch under tf.distribute."""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kerascv_tl")
class RetinaNetDetector(keras_hub.models.RetinaNetObjectDetector):
    """`RetinaNetObjectDetector` whose loss is the same on N replicas as on one device.

    KerasHub divides the focal and box losses by the number of positive anchors in the batch it sees,
    and zeroes the whole loss (negatives included) when that number is 0. Under tf.distribute each
    replica sees only its share of the batch, so a replica without objects contributed nothing and the
    others were normalised by their own counts: a mirrored run trained a different model than one
    device on the same global batch. With more than one replica this loss encodes the targets the way
    KerasHub does and normalises by the positives summed over all replicas (the reference RetinaNet's
    rule); with one replica it is KerasHub's loss, unchanged.
    """

    # KerasHub picks the task class a preset loads into among the registered subclasses of the family that share the
    # preset's backbone class, in no fixed order: with this class among them, `ObjectDetector.from_preset` on a
    # KerasHub RetinaNet preset could pick it and fail. Without a backbone class it is never picked; a preset saved
    # from it still loads as it (its task.json names it, a subclass of KerasHub's RetinaNet).
    backbone_cls = None

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        return keras_hub.models.RetinaNetObjectDetector.from_preset(preset, load_weights=load_weights, **kwargs)

    def compute_loss(self, x, y, y_pred, sample_weight, **kwargs):
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return super().compute_loss(x, y, y_pred, sample_weight, **kwargs)
        _, height, width, _ = keras.ops.shape(x)
        encoded = keras.utils.bounding_boxes.convert_format(
            y,
            source=self.bounding_box_format,
            target=self.label_encoder.bounding_box_format,
            height=height,
            width=width,
        )
        boxes, labels = self.label_encoder(images=x, gt_boxes=encoded["boxes"], gt_classes=encoded["labels"])
        positive = tf.cast(labels > -1.0, tf.float32)  # -1: background, -2: ignored
        positives = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(positive))
        normalizer = tf.maximum(positives, 1.0)
        # KerasHub's rule, on the global count: no positive anywhere in the batch -> no loss at all.
        keep = tf.cast(positives > 0, tf.float32)
        sample_weights = {
            "bbox_regression": positive / normalizer * keep,
            "cls_logits": tf.cast(tf.not_equal(labels, -2.0), tf.float32) / normalizer * keep,
        }
        targets = {
            "bbox_regression": boxes,
            "cls_logits": tf.one_hot(tf.cast(labels, tf.int32), self.num_classes, dtype=tf.float32),
        }
        # The compiled focal and Huber losses, skipping KerasHub's per-replica normalisation.
        return super(keras_hub.models.RetinaNetObjectDetector, self).compute_loss(
            x=x, y=targets, y_pred=y_pred, sample_weight=sample_weights, **kwargs
        )
