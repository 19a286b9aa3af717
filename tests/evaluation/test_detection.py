"""COCO detection metrics (pycocotools) against values derived by hand, and detection overlays.

COCO AP recap used in the hand derivations below: for each IoU threshold t in 0.50, 0.55, ..., 0.95 the
detections of a class are sorted by score and marked TP/FP (a TP needs IoU >= t with a not-yet-matched
ground-truth box); precision is made monotone (max over higher recalls) and read at the 101 recall points
0.00, 0.01, ..., 1.00 (a recall point r takes the precision of the first detection reaching recall >= r;
points beyond the final recall count 0). AP is the mean of those 101 values, then the mean over the 10
thresholds; mAP is the mean over classes that have ground truth.
"""

import json

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle
from support import assert_png, capture_saved_figures, folder_holds_only

from kerascv_tl.evaluation import detection_plots
from kerascv_tl.evaluation.detection import coco_detection_metrics
from kerascv_tl.evaluation.detection_plots import plot_detection_grid, plot_detections

TOL = 1e-6
CLASSES = ["cat", "dog", "bird"]

# A 20x10 box (area 200).
BOX = [10.0, 10.0, 30.0, 20.0]
# Shifted right by half its width (10 px): intersection 10x10 = 100, union 200 + 200 - 100 = 300,
# IoU = 1/3 < 0.5, so it is a false positive at every COCO threshold.
BOX_HALF_SHIFT = [20.0, 10.0, 40.0, 20.0]
# Shifted right by 4 px: intersection 16x10 = 160, union 200 + 200 - 160 = 240, IoU = 2/3 = 0.667:
# a true positive at t = 0.50, 0.55, 0.60, 0.65 (4 thresholds), a false positive at 0.70 ... 0.95 (6).
BOX_SMALL_SHIFT = [14.0, 10.0, 34.0, 20.0]
OTHER_BOX = [50.0, 40.0, 90.0, 70.0]  # 40x30, far from BOX


def gt(boxes, labels, **extra):
    return {
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, np.int32),
        **extra,
    }


def pred(boxes, scores, labels):
    return {
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "scores": np.asarray(scores, dtype=np.float32),
        "labels": np.asarray(labels, np.int32),
    }


def no_pred():
    return pred(np.zeros((0, 4)), [], [])


def assert_plain_json(value):
    """Only built-in Python types (None allowed), all the way down, and json.dumps accepts it."""
    json.dumps(value, allow_nan=False)
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            assert_plain_json(item)
    elif value is not None:
        assert type(value) in (int, float, str), type(value)


def assert_headline(metrics, map_50_95, map_50, map_75):
    assert metrics["map_50_95"] == pytest.approx(map_50_95, abs=TOL)
    assert metrics["map_50"] == pytest.approx(map_50, abs=TOL)
    assert metrics["map_75"] == pytest.approx(map_75, abs=TOL)


# ------------------------------------------------------------------------------------------------- metrics


def test_ground_truth_as_predictions_is_perfect():
    truth = [
        gt([BOX, OTHER_BOX], [0, 1], width=100, height=80),
        gt([OTHER_BOX, [0, 0, 5, 5], [60, 5, 99, 35]], [2, 0, 0], width=100, height=80),
    ]
    preds = [pred(t["boxes"], np.ones(len(t["labels"])), t["labels"]) for t in truth]
    metrics = coco_detection_metrics(truth, preds, CLASSES)
    assert_headline(metrics, 1.0, 1.0, 1.0)
    assert metrics["ar_100"] == pytest.approx(1.0, abs=TOL)
    assert metrics["per_class"] == {
        "cat": pytest.approx(1.0, abs=TOL),
        "dog": pytest.approx(1.0, abs=TOL),
        "bird": pytest.approx(1.0, abs=TOL),
    }
    assert (metrics["num_images"], metrics["num_ground_truth"], metrics["num_predictions"]) == (2, 5, 5)
    assert_plain_json(metrics)


def test_half_width_shift_is_a_miss_at_every_threshold():
    # IoU 1/3 (see BOX_HALF_SHIFT): no threshold matches, AP = 0.
    metrics = coco_detection_metrics([gt([BOX], [0])], [pred([BOX_HALF_SHIFT], [0.9], [0])], CLASSES)
    assert_headline(metrics, 0.0, 0.0, 0.0)
    assert metrics["ar_100"] == 0.0
    assert metrics["per_class"] == {"cat": 0.0, "dog": None, "bird": None}


def test_one_exact_and_one_half_shifted_box_in_one_class():
    # One image, two cat boxes. Detections by score: exact box (0.9) TP at every threshold (IoU 1), shifted
    # box (0.8) FP at every threshold (IoU 1/3). Recall after them: 0.5, 0.5; precision 1, 0.5.
    # Recall points 0.00..0.50 (51 of them) read precision 1, points 0.51..1.00 read 0 -> AP = 51/101 at
    # every threshold, so mAP@0.5 = mAP@0.75 = mAP@[.5:.95] = 51/101. Recall is 0.5 everywhere.
    truth = [gt([BOX, OTHER_BOX], [0, 0])]
    shifted_other = [OTHER_BOX[0] + 20, OTHER_BOX[1], OTHER_BOX[2] + 20, OTHER_BOX[3]]  # 40 wide, +20: IoU 1/3
    metrics = coco_detection_metrics(truth, [pred([BOX, shifted_other], [0.9, 0.8], [0, 0])], CLASSES)
    assert_headline(metrics, 51 / 101, 51 / 101, 51 / 101)
    assert metrics["ar_100"] == pytest.approx(0.5, abs=TOL)
    assert metrics["per_class"]["cat"] == pytest.approx(51 / 101, abs=TOL)


def test_exact_box_in_one_class_and_shifted_box_in_another():
    # Image 0: cat box predicted exactly -> cat AP 1. Image 1: dog box predicted shifted by half its width
    # (IoU 1/3) -> dog AP 0. Bird has no ground truth: None, and left out of the mean -> mAP = 0.5.
    truth = [gt([BOX], [0]), gt([BOX], [1])]
    preds = [pred([BOX], [0.9], [0]), pred([BOX_HALF_SHIFT], [0.9], [1])]
    metrics = coco_detection_metrics(truth, preds, CLASSES)
    assert_headline(metrics, 0.5, 0.5, 0.5)
    assert metrics["per_class"] == {"cat": pytest.approx(1.0, abs=TOL), "dog": 0.0, "bird": None}


def test_small_shift_passes_iou_50_but_not_75():
    # IoU 2/3 (see BOX_SMALL_SHIFT): AP 1 at 0.50..0.65, AP 0 at 0.70..0.95 -> mAP@[.5:.95] = 4/10.
    metrics = coco_detection_metrics([gt([BOX], [0])], [pred([BOX_SMALL_SHIFT], [0.9], [0])], CLASSES)
    assert_headline(metrics, 0.4, 1.0, 0.0)
    assert metrics["ar_100"] == pytest.approx(0.4, abs=TOL)
    assert metrics["per_class"]["cat"] == pytest.approx(0.4, abs=TOL)


def test_exact_plus_small_shift_mixes_thresholds():
    # Two cat boxes: one predicted exactly (score 0.9), one shifted 4 px (IoU 2/3, score 0.8).
    # t in 0.50..0.65 (4 thresholds): both TP -> AP 1.
    # t in 0.70..0.95 (6 thresholds): exact TP then FP -> AP 51/101 (as in the half-shift case).
    # mAP@[.5:.95] = (4 * 1 + 6 * 51/101) / 10 = 71/101; mAP@0.5 = 1; mAP@0.75 = 51/101;
    # recall: 1 at 4 thresholds, 0.5 at 6 -> AR@100 = (4 + 3) / 10 = 0.7.
    second = [50.0, 40.0, 70.0, 50.0]  # another 20x10 box
    second_shifted = [54.0, 40.0, 74.0, 50.0]
    metrics = coco_detection_metrics(
        [gt([BOX, second], [0, 0])], [pred([BOX, second_shifted], [0.9, 0.8], [0, 0])], CLASSES
    )
    assert_headline(metrics, 71 / 101, 1.0, 51 / 101)
    assert metrics["ar_100"] == pytest.approx(0.7, abs=TOL)


def test_scores_decide_the_ranking():
    # Same boxes as the half-shift case, but the miss scores higher (0.9) than the hit (0.8).
    # Sorted: FP, TP -> recall 0, 0.5; precision 0, 0.5; made monotone: 0.5, 0.5.
    # Recall points 0.00..0.50 (51) read 0.5, the rest 0 -> AP = 25.5/101 at every threshold.
    truth = [gt([BOX, OTHER_BOX], [0, 0])]
    shifted_other = [OTHER_BOX[0] + 20, OTHER_BOX[1], OTHER_BOX[2] + 20, OTHER_BOX[3]]
    metrics = coco_detection_metrics(truth, [pred([BOX, shifted_other], [0.8, 0.9], [0, 0])], CLASSES)
    assert_headline(metrics, 25.5 / 101, 25.5 / 101, 25.5 / 101)


def test_false_positive_on_an_image_without_ground_truth():
    # Image 0: cat predicted exactly (score 0.5). Image 1: no boxes, but a cat predicted with score 0.9.
    # Sorted: FP (0.9), TP (0.5) -> recall 0, 1; precision 0, 0.5; monotone 0.5, 0.5 -> all 101 recall
    # points read 0.5 -> AP = 0.5 at every threshold.
    truth = [gt([BOX], [0]), gt(np.zeros((0, 4)), [])]
    preds = [pred([BOX], [0.5], [0]), pred([OTHER_BOX], [0.9], [0])]
    metrics = coco_detection_metrics(truth, preds, CLASSES)
    assert_headline(metrics, 0.5, 0.5, 0.5)
    assert metrics["ar_100"] == pytest.approx(1.0, abs=TOL)
    assert metrics["num_ground_truth"] == 1 and metrics["num_predictions"] == 2


def test_no_predictions_gives_zeros():
    truth = [gt([BOX], [0]), gt([OTHER_BOX], [1])]
    metrics = coco_detection_metrics(truth, [no_pred(), {"boxes": [], "scores": [], "labels": []}], CLASSES)
    assert_headline(metrics, 0.0, 0.0, 0.0)
    assert metrics["ar_100"] == 0.0
    assert metrics["per_class"] == {"cat": 0.0, "dog": 0.0, "bird": None}
    assert metrics["num_predictions"] == 0
    assert_plain_json(metrics)


def test_class_without_ground_truth_is_none_and_left_out_of_the_mean():
    # Bird has no ground truth; its (spurious) prediction is ignored by COCO, cat is perfect -> mAP 1.
    truth = [gt([BOX], [0])]
    metrics = coco_detection_metrics(truth, [pred([BOX, OTHER_BOX], [0.9, 0.95], [0, 2])], CLASSES)
    assert metrics["per_class"] == {"cat": pytest.approx(1.0, abs=TOL), "dog": None, "bird": None}
    assert_headline(metrics, 1.0, 1.0, 1.0)
    assert_plain_json(metrics)


def test_no_ground_truth_at_all_gives_none():
    metrics = coco_detection_metrics([gt(np.zeros((0, 4)), [])], [pred([BOX], [0.9], [0])], CLASSES)
    assert metrics["map_50_95"] is None and metrics["map_50"] is None and metrics["ar_100"] is None
    assert metrics["per_class"] == {"cat": None, "dog": None, "bird": None}
    assert_plain_json(metrics)


def test_padding_label_minus_one_is_dropped():
    # KerasCV/KerasHub pad fixed-size box tensors with label -1.
    truth = [gt([BOX, [-1, -1, -1, -1]], [0, -1])]
    preds = [pred([BOX, [-1, -1, -1, -1]], [0.9, -1], [0, -1])]
    metrics = coco_detection_metrics(truth, preds, CLASSES)
    assert_headline(metrics, 1.0, 1.0, 1.0)
    assert metrics["num_ground_truth"] == 1 and metrics["num_predictions"] == 1


def test_pycocotools_output_is_silenced(capsys):
    coco_detection_metrics([gt([BOX], [0])], [pred([BOX], [0.9], [0])], CLASSES)
    coco_detection_metrics([gt([BOX], [0])], [no_pred()], CLASSES)
    assert capsys.readouterr().out == ""


def test_inputs_are_not_modified():
    truth = [gt([BOX], [0])]
    preds = [pred([BOX_SMALL_SHIFT], [0.9], [0])]
    before = [{k: np.copy(v) for k, v in d.items()} for d in truth + preds]
    coco_detection_metrics(truth, preds, CLASSES)
    for original, now in zip(before, truth + preds):
        assert sorted(original) == sorted(now)
        for key in original:
            np.testing.assert_array_equal(original[key], now[key])


@pytest.mark.parametrize(
    "truth, preds, match",
    [
        ([gt([BOX], [0])], [], "1 images but predictions has 0"),
        ([gt([BOX], [0]), gt([BOX], [0])], [pred([BOX], [1], [0])], "2 images"),
        ([], [], "at least one image"),
        ([gt([BOX], [0])], [pred([BOX], [1], [3])], r"\[0, 3\)"),  # label out of range
        ([gt([BOX], [5])], [no_pred()], r"\[0, 3\)"),
        ([{"boxes": [[1, 2, 3]], "labels": [0]}], [no_pred()], r"\[N, 4\]"),
        ([gt([BOX], [0, 1])], [no_pred()], "1 boxes but 2 labels"),
        ([gt([BOX], [0])], [pred([BOX], [0.5, 0.6], [0])], "scores must have shape"),
        ([gt([BOX], [0])], [{"boxes": [BOX], "labels": [0]}], "'scores'"),
        ([{"boxes": [BOX]}], [no_pred()], "'labels'"),
        ([gt([[30, 10, 10, 20]], [0])], [no_pred()], "x2 >= x1"),  # inverted ground-truth box
        ([gt([[10, 10, np.nan, 20]], [0])], [no_pred()], "finite"),
        ([{"boxes": [BOX], "labels": [0.5]}], [no_pred()], "integer"),
        (gt([BOX], [0]), pred([BOX], [1], [0]), "one dict per image"),
        (["not a dict"], [no_pred()], "must be a dict"),
    ],
)
def test_invalid_inputs_raise_value_error(truth, preds, match):
    with pytest.raises(ValueError, match=match):
        coco_detection_metrics(truth, preds, CLASSES)


@pytest.mark.parametrize("names", ["cat", [], ["cat", "cat"]])
def test_invalid_class_names_raise(names):
    with pytest.raises(ValueError):
        coco_detection_metrics([gt([BOX], [0])], [no_pred()], names)


# ------------------------------------------------------------------------------------------------ overlays


@pytest.fixture
def figures(monkeypatch):
    """Figures passed to the writer, to look inside what was drawn."""
    return capture_saved_figures(monkeypatch, detection_plots)


def rectangles(axes):
    return [
        (to_hex(p.get_edgecolor()), p.get_xy(), p.get_width(), p.get_height())
        for p in axes.patches
        if isinstance(p, Rectangle)
    ]


IMAGE = np.random.default_rng(0).integers(0, 256, size=(80, 100, 3), dtype=np.uint8)


def test_plot_detections_draws_gt_green_and_confident_predictions_red(tmp_path, figures):
    path = tmp_path / "detections.png"
    truth = gt([BOX, OTHER_BOX], [0, 1])
    prediction = pred([BOX_SMALL_SHIFT, OTHER_BOX, [0, 0, 5, 5]], [0.87, 0.1, 0.3], [0, 1, 2])
    assert plot_detections(IMAGE, truth, prediction, CLASSES, path) == path
    assert_png(path)
    folder_holds_only(tmp_path, "detections.png")

    axes = figures[0].axes[0]
    drawn = rectangles(axes)
    green = [r for r in drawn if r[0] == detection_plots.GT_COLOR]
    red = [r for r in drawn if r[0] == detection_plots.PRED_COLOR]
    assert len(green) == 2 and len(red) == 2  # the 0.1 prediction is under the 0.3 threshold
    assert ("#27ae60", (10.0, 10.0), 20.0, 10.0) in green  # xyxy -> (x, y), w, h
    texts = {t.get_text() for t in axes.texts}
    assert {"cat 0.87", "bird 0.30", "cat", "dog"} <= texts
    assert "dog 0.10" not in texts


def test_boxes_far_outside_the_image_are_drawn_clipped_to_it(tmp_path, figures):
    # An untrained detector decodes some anchors to boxes 1e5-1e6 pixels wide; matplotlib could not render their
    # captions there ("raster overflow").
    prediction = pred([[-9e5, -9e5, 9e5, 9e5], [50.0, -4e5, 4e5, 40.0]], [0.9, 0.8], [0, 1])
    path = tmp_path / "far.png"
    plot_detections(IMAGE, None, prediction, CLASSES, path)
    assert_png(path)
    red = [r for r in rectangles(figures[0].axes[0]) if r[0] == detection_plots.PRED_COLOR]
    assert sorted(r[1:] for r in red) == [((0.0, 0.0), 100.0, 80.0), ((50.0, 0.0), 50.0, 40.0)]


def test_plot_detections_overwrites_and_accepts_missing_prediction(tmp_path):
    path = tmp_path / "detections.png"
    path.write_bytes(b"old")
    plot_detections(IMAGE[..., 0], gt([BOX], [0]), None, CLASSES, path, score_threshold=0.0)
    assert_png(path)
    folder_holds_only(tmp_path, "detections.png")


def test_plot_detections_rejects_bad_labels_without_leaving_files(tmp_path):
    with pytest.raises(ValueError, match="class indices"):
        plot_detections(IMAGE, gt([BOX], [7]), None, CLASSES, tmp_path / "bad.png")
    folder_holds_only(tmp_path)


def test_plot_detection_grid(tmp_path, figures):
    samples = [(IMAGE, gt([BOX], [0]), pred([BOX], [0.9], [0])) for _ in range(5)]
    samples.append((IMAGE, gt(np.zeros((0, 4)), []), no_pred()))
    path = tmp_path / "grid.png"
    assert plot_detection_grid(samples, CLASSES, path, columns=4) == path
    assert_png(path)
    folder_holds_only(tmp_path, "grid.png")
    image_axes = [a for a in figures[0].axes if a.images]
    assert len(image_axes) == 6
    assert sum(len(rectangles(a)) for a in image_axes) == 10


def test_plot_detection_grid_empty_and_invalid(tmp_path):
    path = tmp_path / "grid.png"
    plot_detection_grid([], CLASSES, path)
    assert_png(path)
    with pytest.raises(ValueError, match="columns"):
        plot_detection_grid([(IMAGE, None, None)], CLASSES, tmp_path / "x.png", columns=0)
    with pytest.raises(ValueError, match="triple"):
        plot_detection_grid([IMAGE], CLASSES, tmp_path / "x.png")
    folder_holds_only(tmp_path, "grid.png")


def test_metrics_module_keeps_pyplot_out():
    import subprocess
    import sys

    code = (
        "import sys, kerascv_tl.evaluation.detection_plots; "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
