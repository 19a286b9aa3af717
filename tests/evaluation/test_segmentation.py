"""Segmentation metrics against confusion matrices counted by hand, and segmentation overlays.

Classes in the hand examples: 0 = background, 1 = cat, 2 = dog (and 3 = bird where a 4th class is needed).
`I` (255) marks unlabelled ground-truth pixels. IoU_c = TP / (TP + FP + FN) = M[c, c] / (row_c + col_c - M[c, c]).
"""

import json

import keras
import numpy as np
import pytest
from PIL import Image
from support import assert_png, capture_saved_figures, folder_holds_only

from kerascv_tl.data.mask_records import IGNORE_INDEX
from kerascv_tl.evaluation import plots, segmentation
from kerascv_tl.evaluation.segmentation import (
    ConfusionAccumulator,
    colorize,
    overlay,
    plot_segmentation_grid,
    segmentation_metrics,
    write_overlay_png,
)

I = IGNORE_INDEX
CLASSES = ["background", "cat", "dog"]

# Image A. Pixel pairs (truth, prediction), row by row:
#   row 0: (0,0) (0,0) (1,1) (1,0)
#   row 1: (0,0) (0,1) (1,1) (1,1)
#   row 2: (2,2) (2,2)  ign   ign
#   row 3: (2,2) (2,1) (2,2)  ign
GT_A = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, I, I], [2, 2, 2, I]], dtype=np.uint8)
PRED_A = np.array([[0, 0, 1, 0], [0, 1, 1, 1], [2, 2, 0, 1], [2, 1, 2, 2]], dtype=np.int32)
# 16 pixels - 3 ignored = 13 counted.
MATRIX_A = [[3, 1, 0], [1, 3, 0], [0, 1, 4]]

# Image B:
#   row 0:  ign  (0,0) (0,0) (0,0)
#   row 1: (1,1) (1,1) (1,2) (0,0)
#   row 2: (1,0) (1,1) (1,1) (0,0)
#   row 3:  ign   ign  (0,0) (0,2)
GT_B = np.array([[I, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0], [I, I, 0, 0]], dtype=np.uint8)
PRED_B = np.array([[2, 0, 0, 0], [1, 1, 2, 0], [0, 1, 1, 0], [1, 0, 0, 2]], dtype=np.int32)
# 16 - 3 ignored = 13 counted; no dog in the ground truth, but two predicted.
MATRIX_B = [[6, 0, 1], [1, 4, 1], [0, 0, 0]]

# A + B: total 26, trace 9 + 7 + 4 = 20; rows (truth) 11, 10, 5; columns (prediction) 11, 9, 6.
MATRIX_AB = [[9, 1, 1], [2, 7, 1], [0, 1, 4]]
IOU_AB = {
    "background": 9 / 13,  # 9 / (11 + 11 - 9)
    "cat": 7 / 12,  # 7 / (10 + 9 - 7)
    "dog": 4 / 7,
}  # 4 / (5 + 6 - 4)


def accumulate(pairs, num_classes=3, **kwargs):
    accumulator = ConfusionAccumulator(num_classes, **kwargs)
    for truth, pred in pairs:
        accumulator.update(truth, pred)
    return accumulator


def assert_plain_json(value):
    json.dumps(value, allow_nan=False)
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            assert_plain_json(item)
    elif value is not None:
        assert type(value) in (int, float, str), type(value)


# ------------------------------------------------------------------------------------------ confusion matrix


def test_single_image_matrix_matches_hand_count():
    matrix = accumulate([(GT_A, PRED_A)]).matrix
    assert matrix.dtype == np.int64 and matrix.shape == (3, 3)
    np.testing.assert_array_equal(matrix, MATRIX_A)


def test_two_images_accumulate_to_hand_count():
    matrix = accumulate([(GT_A, PRED_A), (GT_B, PRED_B)]).matrix
    np.testing.assert_array_equal(matrix, MATRIX_AB)
    assert int(matrix.sum()) == 26  # 32 pixels - 6 ignored


def test_image_by_image_equals_one_batch():
    one_by_one = accumulate([(GT_A, PRED_A), (GT_B, PRED_B)]).matrix
    batched = accumulate([(np.stack([GT_A, GT_B]), np.stack([PRED_A, PRED_B]))]).matrix
    np.testing.assert_array_equal(batched, one_by_one)
    np.testing.assert_array_equal(batched, MATRIX_AB)


def test_images_of_different_sizes_accumulate():
    # A 2x3 image adds (0,0) (1,1) (2,1) / (2,2) (2,0), its ignored pixel predicted 0 counts nowhere.
    small_gt = np.array([[0, 1, 2], [2, 2, I]], dtype=np.uint8)
    small_pred = np.array([[0, 1, 1], [2, 0, 0]], dtype=np.int64)
    matrix = accumulate([(GT_A, PRED_A), (small_gt, small_pred)]).matrix
    np.testing.assert_array_equal(matrix, [[4, 1, 0], [1, 4, 0], [1, 2, 5]])


@pytest.mark.parametrize("prediction_there", [0, 1, 2])
def test_ignored_pixels_count_nowhere_whatever_is_predicted(prediction_there):
    truth = np.full((3, 3), I, dtype=np.uint8)
    truth[1, 1] = 1  # the only labelled pixel
    pred = np.full((3, 3), prediction_there, dtype=np.int32)
    pred[1, 1] = 1
    matrix = accumulate([(truth, pred)]).matrix
    np.testing.assert_array_equal(matrix, [[0, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_custom_ignore_index():
    truth = np.array([[0, -1], [1, -1]])
    pred = np.array([[0, 2], [2, 1]])
    matrix = accumulate([(truth, pred)], ignore_index=-1).matrix
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 0, 1], [0, 0, 0]])


def test_accumulator_is_keras_mean_iou():
    accumulator = accumulate([(GT_A, PRED_A), (GT_B, PRED_B)])
    metric = accumulator._metric
    assert isinstance(metric, keras.metrics.MeanIoU)
    assert metric.ignore_class == IGNORE_INDEX
    # Keras' own mean (over classes with a non-zero union) agrees with ours.
    expected = sum(IOU_AB.values()) / 3
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    accumulator.reset()
    np.testing.assert_array_equal(accumulator.matrix, np.zeros((3, 3)))


def test_shape_mismatch_names_both_shapes():
    accumulator = ConfusionAccumulator(3)
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 3\)"):
        accumulator.update(GT_A, PRED_A[:, :3])
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        accumulator.update(GT_A.reshape(-1), PRED_A.reshape(-1))
    np.testing.assert_array_equal(accumulator.matrix, np.zeros((3, 3)))


@pytest.mark.parametrize("bad", [3, -1, I])
def test_prediction_out_of_range_raises(bad):
    pred = PRED_A.copy()
    pred[0, 0] = bad
    accumulator = ConfusionAccumulator(3)
    with pytest.raises(ValueError, match=r"prediction.*\[0, 3\)"):
        accumulator.update(GT_A, pred)
    np.testing.assert_array_equal(accumulator.matrix, np.zeros((3, 3)))  # nothing half-added


def test_ground_truth_out_of_range_raises():
    truth = GT_A.copy()
    truth[0, 0] = 7  # neither a class nor the ignore value: Keras would drop it silently
    with pytest.raises(ValueError, match="ground_truth"):
        ConfusionAccumulator(3).update(truth, PRED_A)


def test_non_integer_maps_raise():
    with pytest.raises(ValueError, match="integer"):
        ConfusionAccumulator(3).update(GT_A.astype(np.float32) + 0.5, PRED_A)
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionAccumulator(0)


# ------------------------------------------------------------------------------------------------ metrics


def test_metrics_of_image_a():
    # total 13, trace 10; rows 4, 4, 5; columns 4, 5, 4.
    # IoU: bg 3/(4+4-3) = 3/5, cat 3/(4+5-3) = 1/2, dog 4/(5+4-4) = 4/5; mean 19/30.
    # fw: 4/13 * 3/5 + 4/13 * 1/2 + 5/13 * 4/5 = (12 + 10 + 20) / 65 = 42/65.
    metrics = segmentation_metrics(np.array(MATRIX_A), CLASSES)
    assert metrics["per_class_iou"] == {
        "background": pytest.approx(3 / 5),
        "cat": pytest.approx(1 / 2),
        "dog": pytest.approx(4 / 5),
    }
    assert metrics["miou"] == pytest.approx(19 / 30)
    assert metrics["pixel_accuracy"] == pytest.approx(10 / 13)
    assert metrics["fw_iou"] == pytest.approx(42 / 65)
    assert metrics["num_pixels"] == 13 and metrics["num_classes"] == 3
    assert_plain_json(metrics)


def test_metrics_of_both_images():
    metrics = segmentation_metrics(accumulate([(GT_A, PRED_A), (GT_B, PRED_B)]).matrix, CLASSES)
    assert metrics["per_class_iou"] == {k: pytest.approx(v) for k, v in IOU_AB.items()}
    assert metrics["miou"] == pytest.approx((9 / 13 + 7 / 12 + 4 / 7) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(20 / 26)
    assert metrics["fw_iou"] == pytest.approx(11 / 26 * 9 / 13 + 10 / 26 * 7 / 12 + 5 / 26 * 4 / 7)
    assert metrics["num_pixels"] == 26
    assert_plain_json(metrics)


def test_absent_class_is_none_and_predicted_only_class_is_zero():
    # Image B with a 4th class "bird" that appears nowhere. Dog is only predicted (2 false positives).
    # total 13, trace 10; rows 7, 6, 0, 0; columns 7, 4, 2, 0.
    # IoU: bg 6/(7+7-6) = 3/4, cat 4/(6+4-4) = 2/3, dog 0/2 = 0, bird None.
    # mIoU over bg, cat, dog = (3/4 + 2/3 + 0) / 3 = 17/36; fw = 7/13 * 3/4 + 6/13 * 2/3 = 37/52.
    names = CLASSES + ["bird"]
    matrix = accumulate([(GT_B, PRED_B)], num_classes=4).matrix
    np.testing.assert_array_equal(matrix, [[6, 0, 1, 0], [1, 4, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    metrics = segmentation_metrics(matrix, names)
    assert metrics["per_class_iou"] == {
        "background": pytest.approx(3 / 4),
        "cat": pytest.approx(2 / 3),
        "dog": 0.0,
        "bird": None,
    }
    assert metrics["miou"] == pytest.approx(17 / 36)
    assert metrics["pixel_accuracy"] == pytest.approx(10 / 13)
    assert metrics["fw_iou"] == pytest.approx(37 / 52)
    assert metrics["num_classes"] == 4
    assert_plain_json(metrics)


def test_perfect_prediction():
    pred_a = np.where(GT_A == I, 2, GT_A)  # anything under the ignored pixels
    pred_b = np.where(GT_B == I, 1, GT_B)
    metrics = segmentation_metrics(accumulate([(GT_A, pred_a), (GT_B, pred_b)]).matrix, CLASSES)
    assert metrics["miou"] == 1.0 and metrics["pixel_accuracy"] == 1.0
    assert metrics["fw_iou"] == pytest.approx(1.0)
    assert metrics["per_class_iou"] == {"background": 1.0, "cat": 1.0, "dog": 1.0}
    assert metrics["num_pixels"] == 26


def test_nothing_labelled_raises():
    matrix = accumulate([(np.full((2, 2), I, np.uint8), np.zeros((2, 2), np.int32))]).matrix
    np.testing.assert_array_equal(matrix, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no labelled pixels"):
        segmentation_metrics(matrix, CLASSES)


@pytest.mark.parametrize(
    "matrix, names, match",
    [
        (np.eye(3), ["a", "b"], "class_names has 2"),
        (np.ones((2, 3)), ["a", "b"], "square"),
        (-np.eye(2), ["a", "b"], "non-negative"),
        (np.eye(2) * 0.5, ["a", "b"], "integer"),
        (np.eye(2), ["a", "a"], "distinct"),
    ],
)
def test_invalid_matrix_raises(matrix, names, match):
    with pytest.raises(ValueError, match=match):
        segmentation_metrics(matrix, names)


# ------------------------------------------------------------------------------------------------ colours


PHOTO = np.random.default_rng(0).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)


def test_colorize_palette():
    colours = colorize(np.array([[0, 1, 2], [3, I, 1]], dtype=np.uint8), 4)
    assert colours.dtype == np.uint8 and colours.shape == (2, 3, 3)
    # PASCAL VOC colours: 0 black, 1 dark red, 2 dark green, 3 olive; ignore white.
    np.testing.assert_array_equal(
        colours, [[[0, 0, 0], [128, 0, 0], [0, 128, 0]], [[128, 128, 0], [255, 255, 255], [128, 0, 0]]]
    )
    np.testing.assert_array_equal(colorize(np.array([[0, 1, 2], [3, I, 1]]), 4), colours)  # deterministic


def test_colorize_distinct_colours_and_range():
    every_class = colorize(np.arange(255).reshape(15, 17), 255)
    unique = {tuple(c) for c in every_class.reshape(-1, 3)}
    assert len(unique) == 255 and (255, 255, 255) not in unique
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        colorize(np.array([[0, 3]]), 3)


def test_overlay_keeps_background_and_blends_the_rest():
    classes = np.where(GT_A == I, I, PRED_A)
    blended = overlay(PHOTO, classes, 3)
    assert blended.dtype == np.uint8 and blended.shape == PHOTO.shape
    background = classes == 0
    np.testing.assert_array_equal(blended[background], PHOTO[background])
    # a cat pixel: round(0.5 * photo + 0.5 * (128, 0, 0))
    photo = np.array([[[100, 50, 201]]], dtype=np.uint8)
    np.testing.assert_array_equal(overlay(photo, np.array([[1]]), 3), [[[114, 25, 100]]])
    np.testing.assert_array_equal(overlay(photo, np.array([[1]]), 3, alpha=0.0), photo)
    np.testing.assert_array_equal(overlay(photo, np.array([[I]]), 3, alpha=1.0), [[[255, 255, 255]]])


def test_overlay_shape_mismatch_names_both():
    with pytest.raises(ValueError, match=r"\(4, 4, 3\).*\(4, 3\)"):
        overlay(PHOTO, PRED_A[:, :3], 3)
    with pytest.raises(ValueError, match="alpha"):
        overlay(PHOTO, PRED_A, 3, alpha=1.5)


def test_write_overlay_png(tmp_path):
    photo = np.random.default_rng(1).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    classes = np.zeros((37, 53), dtype=np.int32)
    classes[5:20, 10:40] = 2
    path = tmp_path / "out" / "overlay.png"
    assert write_overlay_png(photo, classes, 3, path) == path
    assert_png(path)
    folder_holds_only(path.parent, "overlay.png")
    with Image.open(path) as image:
        assert image.size == (53, 37) and image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), overlay(photo, classes, 3))


def test_write_overlay_png_rejects_mismatch_without_leaving_files(tmp_path):
    with pytest.raises(ValueError, match="same height and width"):
        write_overlay_png(PHOTO, np.zeros((5, 4), np.int32), 3, tmp_path / "overlay.png")
    folder_holds_only(tmp_path)


# --------------------------------------------------------------------------------------------------- grid


@pytest.fixture
def figures(monkeypatch):
    """Figures passed to the writer, to look inside what was drawn."""
    return capture_saved_figures(monkeypatch, segmentation)


def legend_labels(figure):
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def test_plot_segmentation_grid(tmp_path, figures):
    photo_b = np.random.default_rng(2).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    wide = np.zeros((6, 10, 3), dtype=np.uint8)
    samples = [(PHOTO, GT_A, PRED_A), (photo_b, GT_B, PRED_B), (wide, np.zeros((6, 10), np.uint8), None)]
    path = tmp_path / "grid.png"
    assert plot_segmentation_grid(samples, CLASSES, path) == path
    assert_png(path)
    folder_holds_only(tmp_path, "grid.png")

    (figure,) = figures
    image_axes = [a for a in figure.axes if a.images]
    assert len(image_axes) == 9  # three panels per sample
    assert [a.get_title() for a in image_axes[:3]] == ["#0 image", "#0 ground truth", "#0 prediction"]
    assert image_axes[-1].get_title() == "#2 prediction (none)"
    np.testing.assert_array_equal(image_axes[0].images[0].get_array(), PHOTO)
    np.testing.assert_array_equal(image_axes[2].images[0].get_array(), overlay(PHOTO, PRED_A, 3))
    # classes that occur besides the uncoloured background, then the unlabelled pixels
    assert legend_labels(figure) == ["cat", "dog", "ignore"]


def test_plot_segmentation_grid_legend_is_capped(tmp_path, figures):
    names = [f"class_{i:02d}" for i in range(31)]
    classes = np.arange(31).reshape(1, 31).repeat(2, axis=0)
    classes[1, 1:12] = 30  # class 30 is the most frequent; classes 1..11 occur once (in row 0)
    photo = np.zeros((2, 31, 3), dtype=np.uint8)
    plot_segmentation_grid([(photo, classes, classes)], names, tmp_path / "grid.png")
    labels = legend_labels(figures[0])
    assert len(labels) == segmentation.MAX_LEGEND_ENTRIES
    assert "class_30" in labels and "class_00" not in labels


def test_plot_segmentation_grid_empty_and_invalid(tmp_path, monkeypatch):
    messages = capture_saved_figures(monkeypatch, plots)
    path = tmp_path / "grid.png"
    plot_segmentation_grid([], CLASSES, path)
    assert_png(path)
    assert [t.get_text() for t in messages[-1].texts] == ["nothing to show"]
    with pytest.raises(ValueError, match="triple"):
        plot_segmentation_grid([PHOTO], CLASSES, tmp_path / "x.png")
    with pytest.raises(ValueError, match="same height and width"):
        plot_segmentation_grid([(PHOTO, GT_A[:2], PRED_A)], CLASSES, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        plot_segmentation_grid([(PHOTO, GT_A, PRED_A + 1)], CLASSES, tmp_path / "x.png")
    folder_holds_only(tmp_path, "grid.png")
