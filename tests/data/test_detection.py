"""Detection readers (COCO, VOC, YOLO, Penn-Fudan), resize_with_pad and the tf.data pipeline."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import bad_files
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.data import detection_pipeline
from kerascv_tl.data.decode import read_image_file
from kerascv_tl.data.detection_pipeline import detection_dataset
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import split_records
from kerascv_tl.data.readers import base as readers_base
from kerascv_tl.data.readers import coco_source, pennfudan_source, voc_source, yolo_source
from kerascv_tl.data.records import DetectionRecord, DetectionSource
from kerascv_tl.data.synthetic import SHAPE_CLASSES, is_empty_scene, scene_sample, write_detection_dataset
from kerascv_tl.data.transforms import resize_with_pad

SCENE_SIZE = (56, 72)  # height, width: non-square, so letterboxing pads
SEED = 0


def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def shapes_coco(tmp_path_factory) -> Path:
    return write_detection_dataset(
        tmp_path_factory.mktemp("det"), num_train=12, num_val=4, image_size=SCENE_SIZE, max_shapes=3, seed=SEED
    )


@pytest.fixture(scope="module")
def shapes_source(shapes_coco) -> DetectionSource:
    return coco_source(shapes_coco / "annotations" / "instances_train.json", shapes_coco / "images" / "train")


# --------------------------------------------------------------------------------------------------
# COCO


def test_coco_source_matches_the_rendered_shapes(shapes_source):
    assert shapes_source.class_names == list(SHAPE_CLASSES)
    assert len(shapes_source) == 12 and shapes_source.dropped_boxes == 0
    for index, record in enumerate(shapes_source.records):
        sample = scene_sample(SEED, "train", index, SCENE_SIZE, 3)
        assert Path(record.path).name == f"{index:05d}.png"
        assert (record.height, record.width) == SCENE_SIZE
        np.testing.assert_array_equal(record.boxes, sample.boxes)
        np.testing.assert_array_equal(record.labels, sample.class_ids)
        assert record.boxes.dtype == np.float32 and record.labels.dtype == np.int32
        if is_empty_scene(index):
            assert record.boxes.shape == (0, 4)  # images without annotations are kept


def _write_coco(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "instances.json"
    path.write_text(json.dumps(data))
    return path


def _coco_fixture(tmp_path: Path) -> dict:
    _save(tmp_path / "a.png", _noise(30, 40))
    _save(tmp_path / "b.png", _noise(20, 20, 1))
    return {
        "images": [
            {"id": 5, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 9, "file_name": "b.png"},
        ],  # size read from the header
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 7, "bbox": [2, 3, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 5, "category_id": 3, "bbox": [35, 25, 10, 10], "iscrowd": 0},  # clipped
            {"id": 3, "image_id": 5, "category_id": 3, "bbox": [50, 5, 4, 4], "iscrowd": 0},  # outside: dropped
            {"id": 4, "image_id": 5, "category_id": 7, "bbox": [4, 4, 0, 6], "iscrowd": 0},  # zero width: dropped
            {"id": 5, "image_id": 5, "category_id": 7, "bbox": [0, 0, 40, 30], "iscrowd": 1},  # crowd: skipped
        ],
        "categories": [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}],
    }


def test_coco_remaps_ids_skips_crowd_clips_and_counts_dropped(tmp_path, caplog):
    path = _write_coco(tmp_path, _coco_fixture(tmp_path))
    with caplog.at_level(logging.WARNING, logger=readers_base.__name__):
        source = coco_source(path)  # image_root defaults to the JSON's folder
    assert source.class_names == ["three", "seven"]  # ascending category id
    a, b = source.records
    assert a.path == str(tmp_path / "a.png") and (a.width, a.height) == (40, 30)
    np.testing.assert_array_equal(a.boxes, [[2, 3, 12, 8], [35, 25, 40, 30]])
    np.testing.assert_array_equal(a.labels, [1, 0])
    assert (b.width, b.height) == (20, 20) and b.boxes.shape == (0, 4)
    assert source.dropped_boxes == 2
    assert any(str(tmp_path / "a.png") in r.getMessage() and "dropped 2" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda d: d.pop("images"), "'images' is missing"),
        (lambda d: d["annotations"][0].update(category_id=99), "category_id 99"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, "x", 4]), "bbox"),
        (lambda d: d["annotations"][0].update(image_id=77), "image id 77"),
    ],
)
def test_coco_errors_name_the_json(tmp_path, breakage, expected):
    data = _coco_fixture(tmp_path)
    breakage(data)
    path = _write_coco(tmp_path, data)
    with pytest.raises(DataError, match=expected) as error:
        coco_source(path)
    assert str(path) in str(error.value)


def test_coco_missing_image_and_missing_json(tmp_path):
    data = _coco_fixture(tmp_path)
    data["images"][1]["file_name"] = "gone.png"
    path = _write_coco(tmp_path, data)
    with pytest.raises(DataError, match="gone.png: image file not found"):
        coco_source(path)
    with pytest.raises(DataError, match="nothere.json"):
        coco_source(tmp_path / "nothere.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json: not valid JSON"):
        coco_source(tmp_path / "broken.json")


# --------------------------------------------------------------------------------------------------
# Pascal VOC


def _voc_xml(objects: list[tuple[str, tuple, int]], size=(40, 30)) -> str:
    parts = [f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"]
    for name, (x0, y0, x1, y1), difficult in objects:
        parts.append(
            f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin>"
            f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def _voc_fixture(root: Path) -> Path:
    _save(root / "JPEGImages" / "img1.jpg", _noise(30, 40))
    _save(root / "JPEGImages" / "img2.jpg", _noise(30, 40, 1))
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "img1.xml").write_text(
        _voc_xml(
            [
                ("dog", (1, 1, 10, 20), 0),  # 1-based inclusive -> (0, 0, 10, 20)
                ("cat", (21, 5, 45, 30), 1),  # difficult kept, clipped to x 40
                ("cat", (50, 5, 60, 10), 0),  # outside the image: dropped
            ]
        )
    )
    (root / "Annotations" / "img2.xml").write_text(_voc_xml([("bird", (5, 6, 5, 20), 0)]))  # xmin-1 < xmax: kept
    return root


def test_voc_source(tmp_path, caplog):
    root = _voc_fixture(tmp_path / "voc")
    with caplog.at_level(logging.WARNING, logger=readers_base.__name__):
        source = voc_source(root)
    assert source.class_names == ["bird", "cat", "dog"]
    first, second = source.records
    assert first.path == str(root / "JPEGImages" / "img1.jpg")
    np.testing.assert_array_equal(first.boxes, [[0, 0, 10, 20], [20, 4, 40, 30]])
    np.testing.assert_array_equal(first.labels, [2, 1])
    np.testing.assert_array_equal(second.boxes, [[4, 5, 5, 20]])
    assert source.dropped_boxes == 1
    assert any("img1.jpg" in r.getMessage() for r in caplog.records)
    given = voc_source(root, class_names=["dog", "cat", "bird", "horse"])
    np.testing.assert_array_equal(given.records[0].labels, [0, 1])
    with pytest.raises(DataError, match=r"img1.xml: object names \['dog'\] are not among"):
        voc_source(root, class_names=["bird", "cat"])


def test_voc_errors_name_the_file(tmp_path):
    root = _voc_fixture(tmp_path / "voc")
    bad = root / "Annotations" / "img2.xml"
    bad.write_text(_voc_xml([("bird", ("five", 6, 9, 20), 0)]))
    with pytest.raises(DataError, match=r"img2.xml: object 1 \(bird\) has <xmin>five</xmin>"):
        voc_source(root)
    bad.write_text("<annotation><object>")
    with pytest.raises(DataError, match="img2.xml: not a readable XML"):
        voc_source(root)
    bad.unlink()
    (root / "Annotations" / "img3.xml").write_text(_voc_xml([]))
    with pytest.raises(DataError, match="img3.jpg: image file not found"):
        voc_source(root)


# --------------------------------------------------------------------------------------------------
# YOLO


def _yolo_fixture(root: Path) -> Path:
    images = root / "images" / "train"
    _save(images / "a.jpg", _noise(30, 40))
    _save(images / "b.png", _noise(20, 50, 1))  # no label file: no boxes
    labels = root / "labels" / "train"
    labels.mkdir(parents=True)
    (labels / "a.txt").write_text(
        "1 0.25 0.5 0.5 0.4\n"  # (0, 9, 20, 21)
        "0 0.95 0.5 0.2 0.2\n"  # clipped at x 40: (34, 12, 40, 18)
        "\n"
        "2 0.5 0.5 0.0 0.2\n"  # zero width: dropped
    )
    return images


def test_yolo_source_with_list_and_yaml_names(tmp_path, caplog):
    images = _yolo_fixture(tmp_path / "ds")
    with caplog.at_level(logging.WARNING, logger="kerascv_tl.data.readers"):
        source = yolo_source(images, ["x", "y", "z"])
    a, b = source.records
    assert (a.width, a.height) == (40, 30) and (b.width, b.height) == (50, 20)
    np.testing.assert_allclose(a.boxes, [[0, 9, 20, 21], [34, 12, 40, 18]], atol=1e-4)
    np.testing.assert_array_equal(a.labels, [1, 0])
    assert b.boxes.shape == (0, 4) and source.dropped_boxes == 1
    assert any("a.jpg" in r.getMessage() and "a.txt" in r.getMessage() for r in caplog.records)
    mapping = tmp_path / "data.yaml"
    mapping.write_text("path: .\nnames:\n  0: x\n  1: y\n  2: z\n")
    listing = tmp_path / "list.yaml"
    listing.write_text("names: [x, y, z]\n")
    assert yolo_source(images, mapping).class_names == yolo_source(images, str(listing)).class_names == ["x", "y", "z"]
    (tmp_path / "none.yaml").write_text("nc: 3\n")
    with pytest.raises(DataError, match="none.yaml: no 'names:'"):
        yolo_source(images, tmp_path / "none.yaml")


@pytest.mark.parametrize(
    "line, expected",
    [
        ("0 0.5 0.5 0.2", "has 4 fields"),
        ("0 0.5 1.5 0.2 0.2", r"normalised to \[0, 1\]"),
        ("0 0.5 -0.1 0.2 0.2", r"normalised to \[0, 1\]"),
        ("3 0.5 0.5 0.2 0.2", r"class 3 is not an integer in 0..2"),
        ("0 0.5 abc 0.2 0.2", "not all fields are numbers"),
    ],
)
def test_yolo_malformed_lines_name_the_label_file(tmp_path, line, expected):
    images = _yolo_fixture(tmp_path / "ds")
    label = tmp_path / "ds" / "labels" / "train" / "a.txt"
    label.write_text(f"1 0.25 0.5 0.5 0.4\n{line}\n")
    with pytest.raises(DataError, match=expected) as error:
        yolo_source(images, ["x", "y", "z"])
    assert f"{label}: line 2" in str(error.value)


def test_yolo_polygon_line_and_exif_rotated_size(tmp_path):
    images = tmp_path / "ds" / "images" / "val"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide x 30 high, displayed rotated 90 degrees: 30 x 40 upright
    _save(images / "r.jpg", _noise(30, 40), exif=exif)
    labels = tmp_path / "ds" / "labels" / "val"
    labels.mkdir(parents=True)
    (labels / "r.txt").write_text("0 0.1 0.2 0.5 0.25 0.3 0.6\n")
    (source_record,) = yolo_source(images, ["only"]).records
    assert (source_record.width, source_record.height) == (30, 40)
    assert read_image_file(source_record.path).shape[:2] == (40, 30)
    np.testing.assert_allclose(source_record.boxes, [[3, 8, 15, 24]], atol=1e-4)


def test_yolo_needs_an_images_component(tmp_path):
    _save(tmp_path / "pics" / "a.png", _noise(8, 8))
    with pytest.raises(DataError, match="no path component named 'images'"):
        yolo_source(tmp_path / "pics", ["x"])


# --------------------------------------------------------------------------------------------------
# Real data


@pytest.mark.assets
def test_pennfudan_real_annotations_and_masks_agree(assets):
    root = assets / "pennfudan"
    annotated = pennfudan_source(root)
    masked = pennfudan_source(root, boxes_from="masks")
    assert len(annotated) == len(masked) == 170
    assert annotated.num_boxes == masked.num_boxes == 423
    assert annotated.class_names == masked.class_names == ["person"]
    first = annotated.records[0]
    assert Path(first.path).name == "FudanPed00001.png" and (first.width, first.height) == (559, 536)
    np.testing.assert_array_equal(first.boxes[0], [159, 181, 302, 431])  # "(160, 182) - (302, 431)"
    differences = np.concatenate(
        [np.abs(a.boxes - m.boxes).max(axis=1) for a, m in zip(annotated.records, masked.records)]
    )
    assert np.mean(differences <= 2) > 0.95
    train, val = split_records(annotated, 34, seed=0)
    assert (len(train), len(val)) == (136, 34)
    assert not {r.path for r in train.records} & {r.path for r in val.records}
    again, _ = split_records(annotated, 34, seed=0)
    other, _ = split_records(annotated, 34, seed=1)
    assert [r.path for r in again.records] == [r.path for r in train.records] != [r.path for r in other.records]


@pytest.mark.assets
def test_pennfudan_malformed_annotation_names_the_file(tmp_path, assets):
    root = tmp_path / "pf"
    (root / "PNGImages").mkdir(parents=True)
    (root / "Annotation").mkdir()
    source = assets / "pennfudan"
    (root / "PNGImages" / "FudanPed00001.png").write_bytes((source / "PNGImages" / "FudanPed00001.png").read_bytes())
    text = (source / "Annotation" / "FudanPed00001.txt").read_text()
    annotation = root / "Annotation" / "FudanPed00001.txt"
    annotation.write_text(text.replace("(160, 182) - (302, 431)", "(160, 182) - (302)"))
    with pytest.raises(DataError, match="FudanPed00001.txt: line"):
        pennfudan_source(root)
    annotation.unlink()
    with pytest.raises(DataError, match="FudanPed00001.txt: annotation file not found"):
        pennfudan_source(root)


@pytest.mark.assets
def test_coco128_real_yolo(assets):
    root = assets / "coco128"
    source = yolo_source(root / "images" / "train2017", root / "detection.yaml")
    assert len(source) == 128 and len(source.class_names) == 80
    assert source.class_names[0] == "person" and source.class_names[79] == "toothbrush"
    assert source.num_boxes == 929 and source.dropped_boxes == 0  # 2 images have no label file
    assert sum(len(r.boxes) == 0 for r in source.records) == 2
    for record in source.records:
        assert (record.boxes[:, 2:] > record.boxes[:, :2]).all() and (
            record.boxes <= [record.width, record.height] * 2
        ).all()


# --------------------------------------------------------------------------------------------------
# resize_with_pad


def test_resize_with_pad_geometry_round_trips():
    height, width, size = 30, 50, 40
    image = np.zeros((height, width, 3), np.uint8)
    image[6:18, 10:35] = 255  # box (10, 6, 35, 18)
    box = np.array([10, 6, 35, 18], np.float32)
    resized, scale = resize_with_pad(tf.constant(image), size)
    assert resized.dtype == tf.float32 and resized.shape == (size, size, 3)
    assert float(scale) == pytest.approx(size / width)
    model_box = box * float(scale)
    np.testing.assert_allclose(model_box / float(scale), box, rtol=1e-6)
    pixels = resized.numpy()
    assert pixels.min() >= 0 and pixels.max() <= 255
    assert (pixels[round(height * size / width) :] == 0).all()  # bottom padding
    ys, xs = np.nonzero(pixels[..., 0] > 127)
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], model_box, atol=1.0)
    # Upscaling a tall image pads on the right instead.
    tall, tall_scale = resize_with_pad(tf.ones((20, 10, 3), tf.uint8) * 200, 40)
    assert float(tall_scale) == 2.0 and (tall.numpy()[:, 20:] == 0).all() and (tall.numpy()[:, :20] > 0).all()


# --------------------------------------------------------------------------------------------------
# tf.data pipeline


def _batches(ds) -> list:
    return [(images.numpy(), {k: v.numpy() for k, v in targets.items()}) for images, targets in ds]


def test_eval_pipeline_shapes_padding_and_boxes(shapes_source):
    size, max_boxes = 48, 5
    ds = detection_dataset(shapes_source, size, batch_size=5, training=False, max_boxes=max_boxes)
    images_spec, targets_spec = ds.element_spec
    assert images_spec.shape.as_list() == [None, size, size, 3] and images_spec.dtype == tf.float32
    assert targets_spec["boxes"].shape.as_list() == [None, max_boxes, 4]
    assert targets_spec["labels"].dtype == tf.int32
    batches = _batches(ds)
    assert [b[0].shape[0] for b in batches] == [5, 5, 2]
    boxes = np.concatenate([b[1]["boxes"] for b in batches])
    labels = np.concatenate([b[1]["labels"] for b in batches])
    scale = size / max(SCENE_SIZE)
    for record, row_boxes, row_labels in zip(shapes_source.records, boxes, labels):
        n = len(record.boxes)
        np.testing.assert_allclose(row_boxes[:n], record.boxes * scale, atol=1e-4)
        np.testing.assert_array_equal(row_labels[:n], record.labels)
        assert (row_boxes[n:] == 0).all() and (row_labels[n:] == -1).all()
    assert (labels == -1).all(axis=1).any()  # an image without boxes


def _channel_mask_source(tmp_path: Path) -> DetectionSource:
    """Scenes redrawn so that shape k is white in channel k only; label k says which channel is its box's."""
    records = []
    for index in range(12):
        sample = scene_sample(SEED, "train", index, SCENE_SIZE, 3)
        image = np.zeros((*SCENE_SIZE, 3), np.uint8)
        for k in range(len(sample.boxes)):
            image[..., k] = 255 * (sample.instance_mask == k + 1)
        path = _save(tmp_path / f"{index:02d}.png", image)
        records.append(
            DetectionRecord(str(path), sample.boxes, np.arange(len(sample.boxes)), SCENE_SIZE[1], SCENE_SIZE[0])
        )
    return DetectionSource(records, ["c0", "c1", "c2"], "channel masks")


def _assert_boxes_enclose_pixels(images, targets, tolerance=1.5):
    size = images.shape[1]
    for image, boxes, labels in zip(images, targets["boxes"], targets["labels"]):
        assert (boxes >= 0).all() and (boxes <= size).all()
        for channel in range(3):
            ys, xs = np.nonzero(image[..., channel] > 127)
            rows = np.flatnonzero(labels == channel)
            if len(rows) == 0:  # no box: at most a sliver of the shape is left in the canvas
                assert len(xs) == 0 or min(xs.max() - xs.min(), ys.max() - ys.min()) <= 2
                continue
            box = boxes[rows[0]]
            assert box[2] > box[0] and box[3] > box[1]
            np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box, atol=tolerance)


def test_training_pipeline_boxes_follow_the_pixels_and_repeat_with_the_seed(tmp_path):
    source = _channel_mask_source(tmp_path)
    first = _batches(detection_dataset(source, 48, batch_size=4, training=True, seed=3, max_boxes=4))
    again = _batches(detection_dataset(source, 48, batch_size=4, training=True, seed=3, max_boxes=4))
    other = _batches(detection_dataset(source, 48, batch_size=4, training=True, seed=4, max_boxes=4))
    for (images, targets), (images2, targets2) in zip(first, again):
        np.testing.assert_array_equal(images, images2)
        np.testing.assert_array_equal(targets["boxes"], targets2["boxes"])
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    for images, targets in first + other:
        assert targets["labels"].dtype == np.int32
        _assert_boxes_enclose_pixels(images, targets)
        valid = targets["labels"] >= 0
        assert (targets["boxes"][~valid] == 0).all()
        # Valid boxes come first, padding after.
        assert (np.diff(valid.astype(int), axis=1) <= 0).all()


def test_training_flip_mirrors_boxes_with_the_image(tmp_path, monkeypatch):
    monkeypatch.setattr(detection_pipeline, "SCALE_JITTER", (1.0, 1.0))
    source = _channel_mask_source(tmp_path)
    size = 48
    plain = _batches(detection_dataset(source, size, batch_size=12, training=False, max_boxes=4))[0]
    # Same file order as evaluation needs the shuffled paths back: match by the eval image content.
    ((images, targets),) = _batches(detection_dataset(source, size, batch_size=12, training=True, seed=5, max_boxes=4))
    flipped_count = 0
    for image, boxes, labels in zip(images, targets["boxes"], targets["labels"]):
        matches = [
            i
            for i in range(12)
            if np.allclose(plain[0][i], image, atol=1e-3) or np.allclose(plain[0][i][:, ::-1], image, atol=1e-3)
        ]
        assert len(matches) >= 1
        i = matches[0]
        flipped = not np.allclose(plain[0][i], image, atol=1e-3)
        flipped_count += flipped
        expected = plain[1]["boxes"][i][plain[1]["labels"][i] >= 0]
        if flipped:
            expected = np.stack([size - expected[:, 2], expected[:, 1], size - expected[:, 0], expected[:, 3]], 1)
        np.testing.assert_allclose(boxes[labels >= 0], expected, atol=1e-3)
        np.testing.assert_array_equal(labels, plain[1]["labels"][i])
    assert 0 < flipped_count < 12


def test_pipeline_truncates_to_max_boxes_and_checks_sizes(tmp_path, caplog, capfd):
    image = _save(tmp_path / "x.png", _noise(16, 16))
    boxes = np.array([[0, 0, 4, 4], [4, 4, 8, 8], [8, 8, 12, 12]], np.float32)
    source = DetectionSource([DetectionRecord(str(image), boxes, [0, 1, 0], 16, 16)], ["a", "b"], "tiny")
    with caplog.at_level(logging.WARNING, logger=detection_pipeline.__name__):
        ((_, targets),) = _batches(detection_dataset(source, 32, batch_size=2, training=False, max_boxes=2))
    np.testing.assert_allclose(targets["boxes"][0], boxes[:2] * 2)
    assert "more than max_boxes=2" in caplog.text
    # An image whose size is not the annotations' (changed after the data check) is left out and named.
    other = _save(tmp_path / "other.png", _noise(16, 16))
    wrong = DetectionSource(
        [DetectionRecord(str(image), boxes, [0, 1, 0], 20, 16), DetectionRecord(str(other), boxes, [0, 1, 0], 16, 16)],
        ["a", "b"],
        "wrong size",
    )
    capfd.readouterr()
    ((images, _),) = _batches(detection_dataset(wrong, 32, batch_size=2, training=False))
    assert images.shape[0] == 1
    err = capfd.readouterr().err
    assert "skipped 1 file(s) that failed to load" in err and f": {image}\n" in err


def test_boxes_of_an_exif_rotated_photo_stay_on_its_content(tmp_path):
    # Annotation tools show the photo upright, so boxes are in upright pixels; decoding turns it upright too.
    upright = np.zeros((24, 40, 3), np.uint8)
    upright[4:12, 28:36] = (255, 0, 0)
    bad_files.exif_rotated_jpeg(tmp_path / "phone.jpg", upright)
    (tmp_path / "ann.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "phone.jpg"}],  # no size: read (upright) from the header
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [28, 4, 8, 8]}],
                "categories": [{"id": 1, "name": "red"}],
            }
        )
    )
    source = coco_source(tmp_path / "ann.json")
    assert (source.records[0].width, source.records[0].height) == (40, 24)
    ((images, targets),) = _batches(detection_dataset(source, 40, batch_size=1, training=False))
    x0, y0, x1, y1 = np.round(targets["boxes"][0][0]).astype(int)
    inside = images[0][y0 + 1 : y1 - 1, x0 + 1 : x1 - 1]
    assert inside[..., 0].mean() > 200 and inside[..., 1:].mean() < 60
