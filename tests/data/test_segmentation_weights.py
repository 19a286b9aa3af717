"""Segmentation `train.class_weight`: per-pixel weights, 0 where the mask says ignore, balanced from pixel counts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.class_balance import with_pixel_weights
from kerascv_tl.data.mask_records import IGNORE_INDEX, MaskRecord, SegmentationSource
from kerascv_tl.data.segmentation_pipeline import pixel_class_counts, segmentation_class_weights
from kerascv_tl.tasks.segmentation import SegmentationTask
from kerascv_tl.tasks.segmenter import segmentation_loss

NAMES = ["background", "thing", "never"]


@pytest.fixture
def source(tmp_path):
    """Two 128x64 pairs: class 1 in the first 32 columns, class 0 elsewhere, rows 0-3 not labelled."""
    mask = np.zeros((64, 128), np.uint8)
    mask[:, :32] = 1
    mask[:4] = IGNORE_INDEX
    records = []
    for i in range(2):
        Image.fromarray(np.full((64, 128, 3), 90 * i, np.uint8)).save(tmp_path / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / f"{i}_mask.png")
        records.append(MaskRecord(str(tmp_path / f"{i}.png"), str(tmp_path / f"{i}_mask.png"), 128, 64))
    return SegmentationSource(records, list(NAMES), "tiny")


def test_pixels_are_counted_on_masks_subsampled_to_64_a_side(source):
    # Every 2nd row and column: 30 labelled rows of 16 class-1 and 48 class-0 columns, per mask.
    np.testing.assert_array_equal(pixel_class_counts(source), [2 * 30 * 48, 2 * 30 * 16, 0])
    np.testing.assert_array_equal(pixel_class_counts(source, max_side=128), [2 * 60 * 96, 2 * 60 * 32, 0])
    weights = segmentation_class_weights(source, "balanced")
    np.testing.assert_allclose(weights, [3840 / (3 * 2880), 3840 / (3 * 960), 0.0], rtol=1e-6)
    np.testing.assert_array_equal(segmentation_class_weights(source, {"THING": 5}), [1, 5, 1])


def test_pixel_weights_are_zero_where_ignored_and_the_loss_is_their_weighted_mean():
    masks = np.array([[[0, 1], [IGNORE_INDEX, 2]], [[1, 1], [0, IGNORE_INDEX]]], np.int32)
    logits = np.random.default_rng(0).normal(size=(2, 2, 2, 3)).astype(np.float32)
    weights = np.array([0.5, 2.0, 4.0], np.float32)
    ds = with_pixel_weights(tf.data.Dataset.from_tensors((logits, masks)), weights)
    _, _, pixel_weights = next(iter(ds))
    expected = np.where(masks == IGNORE_INDEX, 0.0, weights[np.minimum(masks, 2)])
    np.testing.assert_array_equal(pixel_weights.numpy(), expected)

    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = masks != IGNORE_INDEX
    ce = -np.take_along_axis(log_p, np.where(valid, masks, 0)[..., None], -1)[..., 0]
    by_hand = (expected * ce)[valid].sum() / valid.sum()  # Keras averages over the labelled pixels
    loss = segmentation_loss()(masks, logits, sample_weight=pixel_weights)
    np.testing.assert_allclose(float(loss), by_hand, rtol=1e-5)
    assert not np.isclose(by_hand, ce[valid].mean())


def test_the_segmentation_tasks_training_batches_carry_pixel_weights(source):
    config = load_config(
        None, ["task=segmentation", "data.image_size=32", "train.batch_size=2", "train.class_weight=balanced"]
    )
    data = SegmentationTask().training_data(SimpleNamespace(config=config, train=source))
    _, masks, pixel_weights = next(iter(data.make(0)))
    weights = segmentation_class_weights(source, "balanced")
    masks = masks.numpy()
    assert (masks == IGNORE_INDEX).any() and (masks == 1).any()
    np.testing.assert_allclose(pixel_weights.numpy(), np.where(masks == IGNORE_INDEX, 0.0, weights[masks % 255]))
