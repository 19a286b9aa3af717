"""Each task's prediction rows, CSV cells, printed lines and files, from serving outputs shaped as TF returns them."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from kerascv_tl.predict.writers import FileNames, check_output_path, write_predictions
from kerascv_tl.tasks.registry import get_task

NAMES = ["cat", "dog", "bird"]


def detection_outputs():
    boxes = np.zeros((2, 4, 4), np.float32)
    boxes[0, :2] = [[1.234, 2.0, 30.5, 40.0], [5.0, 6.0, 7.0, 8.0]]
    return {
        "boxes": boxes,
        "scores": np.array([[0.9, 0.4, 0, 0], [0, 0, 0, 0]], np.float32),
        "class_ids": np.array([[1, 0, -1, -1], [-1, -1, -1, -1]], np.int32),
        "class_names": np.array([[b"dog", b"cat", b"", b""], [b"", b"", b"", b""]], dtype=object),
        "num_detections": np.array([2, 0], np.int32),
    }


def test_detection_rows_list_boxes_in_pixels_and_keep_images_without_boxes(tmp_path):
    task = get_task("detection")
    rows = task.prediction_rows(detection_outputs(), {"labels": NAMES}, top_k=5)
    assert rows[0] == {
        "num_boxes": 2,
        "boxes": [
            {"label": "dog", "score": 0.9, "box": [1.23, 2.0, 30.5, 40.0]},
            {"label": "cat", "score": 0.4, "box": [5.0, 6.0, 7.0, 8.0]},
        ],
    }
    assert rows[1] == {"num_boxes": 0, "boxes": []}
    json.dumps(rows)  # JSON-able as they are
    rows = [{"path": "a.png", **rows[0]}, {"path": "b.png", **rows[1]}]
    out = write_predictions(tmp_path / "p.csv", rows, task.prediction_columns({}, 5), task.prediction_csv)
    with open(out, newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["path", "num_boxes", "boxes"] and [r["num_boxes"] for r in table] == ["2", "0"]
    assert json.loads(table[0]["boxes"]) == rows[0]["boxes"] and json.loads(table[1]["boxes"]) == []
    image = tmp_path / "a.png"
    Image.new("RGB", (40, 50)).save(image)
    files = task.prediction_files(rows[0], image, "a", tmp_path / "masks", tmp_path / "annotated")
    assert files == {"annotated": str(tmp_path / "annotated" / "a_detections.png")}
    legacy = json.loads(task.prediction_line(rows[0] | files, as_json=True))
    assert legacy["image"] == "a.png" and legacy["annotated"] == files["annotated"]
    assert legacy["detections"][0] == {"box_xyxy": [1.2, 2.0, 30.5, 40.0], "class": "dog", "score": 0.9}
    assert task.prediction_line(rows[0]).splitlines()[1] == "  dog 0.900 at (1, 2, 30, 40)"


def test_segmentation_rows_hold_the_mask_and_class_fractions_and_write_it_as_a_png(tmp_path):
    task = get_task("segmentation")
    class_map = np.full((2, 3, 4), -1, np.int32)
    class_map[0, :2, :4] = [[0, 0, 1, 1], [2, 2, 2, 2]]
    class_map[1] = 1
    outputs = {"class_map": class_map, "height": np.array([2, 3]), "width": np.array([4, 4])}
    first, second = task.prediction_rows(outputs, {"labels": NAMES}, top_k=5)
    assert sorted(first) == ["class_fractions", "height", "mask", "width"]
    assert (first["width"], first["height"]) == (4, 2)
    assert first["class_fractions"] == {"cat": 0.25, "dog": 0.25, "bird": 0.5}
    np.testing.assert_array_equal(first["mask"], class_map[0, :2])
    assert second["class_fractions"] == {"cat": 0.0, "dog": 1.0, "bird": 0.0}
    image = tmp_path / "photo.png"
    Image.new("RGB", (4, 2)).save(image)
    files = task.prediction_files(first, image, "photo", tmp_path / "masks", tmp_path / "overlays")
    assert files == {
        "mask_file": str(tmp_path / "masks" / "photo_mask.png"),
        "overlay": str(tmp_path / "overlays" / "photo_segmentation.png"),
    }
    with Image.open(files["mask_file"]) as mask:
        assert mask.mode == "L" and mask.size == (4, 2)
        np.testing.assert_array_equal(np.asarray(mask), class_map[0, :2])
    assert task.prediction_columns({"labels": NAMES}, 5) == [
        "mask_file",
        "width",
        "height",
        "fraction_cat",
        "fraction_dog",
        "fraction_bird",
    ]
    cells = task.prediction_csv(first | files)
    assert cells["mask_file"] == files["mask_file"] and cells["fraction_bird"] == 0.5
    legacy = json.loads(task.prediction_line({"path": "photo.png"} | second | files, as_json=True))
    assert legacy["size"] == [4, 3] and legacy["class_fractions"] == {"dog": 1.0}


def test_multi_label_rows_give_the_labels_over_the_threshold_and_every_probability():
    task = get_task("multi_label")
    card = {"labels": NAMES, "export": {"threshold": 0.4}}
    outputs = {
        "probabilities": np.array([[0.5, 0.9, 0.1], [0.1, 0.2, 0.3]], np.float32),
        "above_threshold": np.array([[True, True, False], [False, False, False]]),
    }
    first, second = task.prediction_rows(outputs, card, top_k=5)
    assert first == {
        "labels": ["dog", "cat"],
        "scores": [0.9, 0.5],
        "threshold": 0.4,
        "probabilities": {"cat": 0.5, "dog": 0.9, "bird": 0.1},
    }
    assert second["labels"] == [] and second["scores"] == []
    assert task.prediction_columns(card, 5) == ["labels", "threshold", "score_cat", "score_dog", "score_bird"]
    assert task.prediction_csv(first) == {
        "labels": "dog;cat",
        "threshold": 0.4,
        "score_cat": 0.5,
        "score_dog": 0.9,
        "score_bird": 0.1,
    }
    assert task.prediction_line({"path": "x.png"} | second) == (
        "x.png: no label at or above the threshold 0.40 (highest: bird 0.300)"
    )


def test_classification_csv_has_label_and_score_columns_per_rank():
    task = get_task("classification")
    outputs = {"probabilities": np.array([[0.2, 0.5, 0.3]], np.float32)}
    (row,) = task.prediction_rows(outputs, {"labels": NAMES}, top_k=2)
    assert row == {"labels": ["dog", "bird"], "scores": [0.5, 0.3]}
    assert task.prediction_columns({"labels": NAMES}, 2) == ["label_1", "score_1", "label_2", "score_2"]
    assert task.prediction_columns({"labels": NAMES}, 9) == [
        "label_1",
        "score_1",
        "label_2",
        "score_2",
        "label_3",
        "score_3",
    ]
    assert task.prediction_csv(row) == {"label_1": "dog", "score_1": 0.5, "label_2": "bird", "score_2": 0.3}


def test_output_files_are_csv_or_jsonl_by_suffix(tmp_path):
    assert check_output_path(tmp_path / "p.JSONL").suffix == ".JSONL"
    for bad in ("p.txt", "p", "p.json"):
        with pytest.raises(ValueError, match=f"{bad}: the output format comes from the file name's suffix"):
            check_output_path(tmp_path / bad)
    rows = [{"path": "a.png", "mask": np.zeros((2, 2)), "width": 2}]
    path = write_predictions(tmp_path / "p.jsonl", rows, [], dict)
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"path": "a.png", "width": 2}]
    assert [p.name for p in tmp_path.iterdir()] == ["p.jsonl"]  # no temporary file left behind


def test_file_names_stay_unique_for_images_of_the_same_name():
    names = FileNames()
    assert [names(p) for p in ("a/x.png", "b/x.jpg", "c/X.png", "y.png")] == ["x", "x-2", "X-3", "y"]
