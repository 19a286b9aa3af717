"""The data check: every bad file, row, annotation, box and mask named with its problem; the rest kept."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import bad_files
import numpy as np
import pytest
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.check import apply_on_bad, check_data
from kerascv_tl.data.detection_pipeline import detection_dataset
from kerascv_tl.data.errors import DataCheckError, DataError
from kerascv_tl.data.segmentation_pipeline import segmentation_dataset


def _config(*overrides: str):
    return load_config(None, list(overrides))


def _messages(check) -> dict[str, str]:
    """file name -> 'message [action]' of every problem (one per file in these tests)."""
    return {Path(p["path"]).name: f"{p['message']} [{p['action']}]" for p in check.problems}


def _assert_named(messages: dict[str, str], name: str, *parts: str) -> None:
    assert name in messages, f"{name} not reported; reported: {sorted(messages)}"
    for part in parts:
        assert part in messages[name], messages[name]


# --------------------------------------------------------------------------------------------------
# Classification


@pytest.fixture(scope="module")
def scraped(tmp_path_factory) -> Path:
    """A class-per-folder tree with every kind of bad file, valid oddities, an empty class and a val CSV."""
    root = tmp_path_factory.mktemp("scraped")
    a, b, empty = root / "train" / "a", root / "train" / "b", root / "train" / "c"
    for folder in (a, b, empty):
        folder.mkdir(parents=True)
    for i in range(3):
        bad_files.png(b / f"b{i}.png", bad_files.noise(seed=i))
    bad_files.jpeg(a / "good.jpg")
    bad_files.valid_oddities(a)
    bad_files.broken_images(a, empty_name="empty.jpg")
    val = root / "val.csv"
    val.write_text(
        "path,label\n"
        "train/b/b0.png,b\n"
        "train/a/good.jpg,a\n"
        "train/b/b1.png,zebra\n"  # unknown label
        "train/b/b0.png,b\n"  # the same path again
        "lonely\n"
    )  # one field
    return root


GOOD_A = {"good.jpg", "cmyk.jpg", "deep.png", "grey.png", "rgba.png", "palette.png", "anim.gif", "phone.jpg"}


@pytest.fixture(scope="module")
def scraped_check(scraped):
    return check_data(_config(f"data.train={scraped}/train", f"data.val={scraped}/val.csv"))


def test_every_bad_classification_file_is_named_with_its_problem(scraped, scraped_check):
    messages = _messages(scraped_check)
    a = scraped / "train" / "a"
    _assert_named(messages, "empty.jpg", f"{a}/empty.jpg: empty file (0 bytes)", "[file skipped]")
    _assert_named(messages, "cut.jpg", f"{a}/cut.jpg: truncated or corrupt image data")
    _assert_named(messages, "cut.png", f"{a}/cut.png: truncated or corrupt image data")
    _assert_named(messages, "page.jpg", f"{a}/page.jpg: not an image")
    _assert_named(messages, "bomb.png", f"{a}/bomb.png: declares 900,000,000 pixels", "decompression bomb")
    _assert_named(messages, "caf\\xe9.png", f"{a}/caf\\xe9.png: file name is not valid UTF-8")
    _assert_named(messages, "c", f"{scraped}/train/c: class folder has no images", "[class kept without images]")
    rows = [p["message"] for p in scraped_check.problems if p["path"].endswith("val.csv")]
    csv = scraped / "val.csv"
    assert sorted(rows) == sorted(
        [
            f"{csv}: row 4: label 'zebra' is not among the classes ['a', 'b', 'c']",
            f"{csv}: row 5 lists train/b/b0.png again (first at row 2); only the first is used",
            f"{csv}: row 6 has 1 field(s); expected path,label",
        ]
    )
    # Files listed for validation too are left out of training, so they cannot inflate the metrics.
    for name in ("b0.png", "good.jpg"):
        _assert_named(messages, name, "is also a validation file; left out of training")
    assert len(scraped_check.problems) == 12 and "12 problem(s)" in scraped_check.summary()


def test_the_good_files_and_valid_oddities_are_kept(scraped, scraped_check):
    train, val = scraped_check.train, scraped_check.val
    assert {Path(p).name for p in train.paths} == (GOOD_A - {"good.jpg"}) | {"b1.png", "b2.png"}
    assert train.class_names == ["a", "b", "c"] and np.bincount(train.labels, minlength=3).tolist() == [7, 2, 0]
    assert [Path(p).name for p in val.paths] == ["b0.png", "good.jpg"]
    assert scraped_check.files_checked == 17 + 2
    assert json.loads(json.dumps(scraped_check.to_dict()))["num_problems"] == 12


def test_on_bad_fail_stops_with_one_line_after_logging_every_problem(scraped_check, caplog):
    with caplog.at_level(logging.WARNING), pytest.raises(DataCheckError, match="data.on_bad is fail"):
        apply_on_bad(scraped_check, "fail")
    assert sum("bad data: " in r.getMessage() for r in caplog.records) == len(scraped_check.problems)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        apply_on_bad(scraped_check, "skip")
    assert "training goes on without them" in caplog.text and "empty.jpg: empty file" in caplog.text


def test_a_single_class_cannot_train_a_classifier(tmp_path):
    (tmp_path / "train" / "only").mkdir(parents=True)
    bad_files.png(tmp_path / "train" / "only" / "x.png")
    with pytest.raises(
        DataError, match=r"train: found 1 class folder\(s\) \['only'\]; classification needs at least 2"
    ):
        check_data(_config(f"data.train={tmp_path}/train"))


def test_paths_may_not_leave_the_declared_dataset_root(tmp_path):
    root = tmp_path / "dataset"
    for name in ("a", "b"):
        (root / "train" / name).mkdir(parents=True)
        bad_files.png(root / "train" / name / "x.png")
    outside = bad_files.png(tmp_path / "secret.png")
    with pytest.raises(DataError, match=r"\.\./elsewhere: data\.train points outside the dataset root"):
        check_data(_config(f"data.root={root}", "data.train=../elsewhere"))
    (root / "val.csv").write_text(f"train/a/x.png,a\n../secret.png,b\n{outside},b\ntrain/b/x.png,b\n")
    check = check_data(_config(f"data.root={root}", "data.train=train", "data.val=val.csv"))
    escapes = [p["message"] for p in check.problems if "outside the dataset root" in p["message"]]
    assert len(escapes) == 2 and any("row 2 of" in m for m in escapes) and any("row 3 of" in m for m in escapes)
    assert [Path(p).name for p in check.val.paths] == ["x.png", "x.png"]


# --------------------------------------------------------------------------------------------------
# Detection


def _coco(folder: Path, images: list[dict], annotations: list[dict], name: str = "instances.json") -> Path:
    path = folder / name
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]})
    )
    return path


def _detection_config(annotations: Path, *extra: str):
    """COCO training annotations, and one clean validation image beside them."""
    folder = annotations.parent / "val"
    folder.mkdir(exist_ok=True)
    bad_files.png(folder / "val.png", bad_files.noise(20, 30))
    val = _coco(folder, [{"id": 1, "file_name": "val.png", "width": 30, "height": 20}], [])
    return _config(
        "task=detection",
        "data.format=coco",
        f"data.train={annotations}",
        f"data.val={val}",
        f"data.val_image_root={folder}",
        "data.image_size=32",
        *extra,
    )


def test_coco_problems_are_named_and_the_good_images_still_load(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("good.png", "boxes.png", "bbox.png", "size.png", "cut.png"):
        bad_files.png(images / name, bad_files.noise(20, 30))
    bad_files.truncated(images / "cut.png", "PNG")
    entries = [
        {"id": i, "file_name": name, "width": 30, "height": 20}
        for i, name in enumerate(
            ["good.png", "boxes.png", "bbox.png", "size.png", "missing.png", "cut.png", "../outside.png", "good.png"]
        )
    ]
    entries[3]["width"] = 40  # the JSON says 40x20, the file is 30x20
    annotations = [
        {"id": 1, "image_id": 0, "category_id": 1, "bbox": [2, 2, 10, 10]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 8]},  # zero width: dropped
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [40, 30, 5, 5]},  # outside the image: dropped
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [20, 10, 20, 5]},  # 10 px past the right edge: clipped
        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 8, 8]},
        {"id": 6, "image_id": 2, "category_id": 1, "bbox": [1, "x", 4, 4]},  # not a number: image left out
    ]
    check = check_data(_detection_config(_coco(tmp_path, entries, annotations), f"data.image_root={images}"))
    json_path = tmp_path / "instances.json"
    found = [f"{p['message']} [{p['action']}]" for p in check.problems]

    def named(*parts):
        assert any(all(part in message for part in parts) for message in found), (parts, found)

    named(f"{images}/boxes.png: box [5.0, 5.0, 5.0, 13.0] (xyxy) has no area", "[box dropped]")
    named(f"{images}/boxes.png: box [40.0, 30.0, 45.0, 35.0] (xyxy) has no area inside the 30x20 image")
    named(
        f"{images}/boxes.png: box [20.0, 10.0, 40.0, 15.0] (xyxy) reaches 10 px outside", "[box clipped to the image]"
    )
    named(f"{json_path}: annotation 6 has bbox [1, 'x', 4, 4]; expected 4 finite numbers", "[image skipped]")
    named(f"{images}/size.png: the image is 30x20 (upright) but the annotations say 40x20", "[file skipped]")
    named(f"{images}/missing.png: image file not found (referenced by {json_path})", "[image skipped]")
    named(f"{images}/cut.png: truncated or corrupt image data", "[file skipped]")
    named("../outside.png: file_name of image 6", "points outside the dataset root", "[image skipped]")
    named(f"{images}/good.png: listed again as image 7", "only the first is used")
    assert len(found) == 9, "\n".join(found)
    # One class ("person") is a valid detection dataset; training reads the good images with the kept boxes.
    assert check.train.class_names == ["person"]
    assert [Path(r.path).name for r in check.train.records] == ["good.png", "boxes.png"]
    ((images_batch, targets),) = list(detection_dataset(check.train, 32, 2, training=False))
    assert images_batch.shape[0] == 2 and int((targets["labels"][1].numpy() >= 0).sum()) == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"images": [{"id": 1, "file_name": "a.png"', "not valid JSON"),  # truncated
        ('{"images": [], "categories": []}', "'annotations' is missing"),
    ],
)
def test_an_unreadable_coco_file_cannot_be_skipped(tmp_path, text, expected):
    path = tmp_path / "instances.json"
    path.write_text(text)
    with pytest.raises(DataError, match=expected) as error:
        check_data(_detection_config(path))
    assert str(path) in str(error.value)


def _voc(root: Path, boxes: dict[str, str]) -> Path:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for name, xmax in boxes.items():
        bad_files.jpeg(root / "JPEGImages" / f"{name}.jpg", bad_files.noise(20, 30))
        (root / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><object><name>cat</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>{xmax}</xmax>"
            f"<ymax>9</ymax></bndbox></object></annotation>"
        )
    return root


def _yolo(images: Path, lines: dict[str, str]) -> Path:
    labels = images.parent.parent / "labels" / images.name
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for name, line in lines.items():
        bad_files.png(images / f"{name}.png")
        (labels / f"{name}.txt").write_text(line + "\n")
    return labels


def test_voc_and_yolo_problems_name_the_annotation_file(tmp_path):
    voc = _voc(tmp_path / "voc", {"good": "12", "bad": "1e9x"})
    val = _voc(tmp_path / "voc_val", {"val": "12"})
    check = check_data(_config("task=detection", "data.format=voc", f"data.train={voc}", f"data.val={val}"))
    assert [p["message"] for p in check.problems] == [
        f"{voc}/Annotations/bad.xml: object 1 (cat) has <xmax>1e9x</xmax>; expected a number"
    ]
    assert [Path(r.path).name for r in check.train.records] == ["good.jpg"]

    labels = _yolo(
        tmp_path / "yolo" / "images" / "train",
        {"good": "0 0.5 0.5 0.2 0.2", "short": "0 0.5 0.5 0.2", "far": "0 0.5 1.5 0.2 0.2"},
    )
    _yolo(tmp_path / "yolo" / "images" / "val", {"val": "0 0.5 0.5 0.2 0.2"})
    (tmp_path / "names.yaml").write_text("names: [cat]\n")
    check = check_data(
        _config(
            "task=detection",
            "data.format=yolo",
            f"data.train={tmp_path}/yolo/images/train",
            f"data.val={tmp_path}/yolo/images/val",
            f"data.classes={tmp_path}/names.yaml",
        )
    )
    assert sorted(p["message"] for p in check.problems) == [
        f"{labels}/far.txt: line 1 '0 0.5 1.5 0.2 0.2': coordinates must be normalised to [0, 1]",
        f"{labels}/short.txt: line 1 '0 0.5 0.5 0.2': has 4 fields; expected 'class cx cy w h' (5) or a polygon "
        "'class x1 y1 x2 y2 x3 y3 ...'",
    ]
    assert [Path(r.path).name for r in check.train.records] == ["good.png"]


# --------------------------------------------------------------------------------------------------
# Segmentation


def test_mask_problems_are_named_and_the_good_pairs_still_load(tmp_path):
    root = tmp_path / "seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.yaml").write_text("[background, cat]\n")
    mask = np.zeros((16, 24), np.uint8)
    mask[4:8, 4:8] = 1
    for name in ("good", "small", "beyond", "colour"):
        bad_files.png(root / "images" / f"{name}.png", bad_files.noise(16, 24))
    Image.fromarray(mask).save(root / "masks" / "good.png")
    Image.fromarray(mask[:8]).save(root / "masks" / "small.png")  # wrong size
    beyond = mask.copy()
    beyond[0, 0], beyond[0, 1] = 7, 255  # 7 is no class; 255 is the ignore value
    Image.fromarray(beyond).save(root / "masks" / "beyond.png")
    Image.fromarray(bad_files.noise(16, 24)).save(root / "masks" / "colour.png")  # RGB: not class ids
    val = tmp_path / "val"
    for sub in ("images", "masks"):
        (val / sub).mkdir(parents=True)
    bad_files.png(val / "images" / "v.png", bad_files.noise(16, 24))
    Image.fromarray(mask).save(val / "masks" / "v.png")
    check = check_data(
        _config(
            "task=segmentation",
            "data.format=masks",
            f"data.train={root}",
            f"data.val={val}",
            f"data.classes={root}/classes.yaml",
            "data.image_size=32",
        )
    )
    found = {Path(p["path"]).name: f"{p['message']} [{p['action']}]" for p in check.problems}
    masks = root / "masks"
    _assert_named(
        found, "small.png", f"{masks}/small.png: mask {masks}/small.png is 24x8 but image", "is 24x16", "[pair skipped]"
    )
    _assert_named(found, "colour.png", f"{masks}/colour.png: mask has PIL mode 'RGB'", "[pair skipped]")
    _assert_named(
        found, "beyond.png", f"{masks}/beyond.png: mask values [7] are not among the 2 classes' ids", "[pixels ignored]"
    )
    assert len(check.problems) == 3
    assert [Path(r.image).name for r in check.train.records] == ["beyond.png", "good.png"]
    ((images_batch, masks_batch),) = list(segmentation_dataset(check.train, 32, 2, training=False))
    assert images_batch.shape[0] == 2 and set(np.unique(masks_batch[0])) == {0, 1, 255}


# --------------------------------------------------------------------------------------------------
# Examples per class


def test_class_counts_of_images_and_boxes_and_the_ten_to_one_warning(caplog):
    from kerascv_tl.data.check import DataCheck
    from kerascv_tl.data.records import DetectionRecord, DetectionSource, ImageSource

    train = ImageSource(["a", "b"], np.array([0] * 22 + [1] * 2, np.int32), [f"{i}.png" for i in range(24)])
    val = ImageSource(["a", "b"], np.array([0, 1, 1], np.int32), ["v0.png", "v1.png", "v2.png"])
    check = DataCheck(train, val, files_checked=27)
    assert check.to_dict()["class_counts"] == {"unit": "images", "train": {"a": 22, "b": 2}, "val": {"a": 1, "b": 2}}
    lines = check.summary().splitlines()
    assert lines[1:3] == ["training images per class: a 22, b 2", "validation images per class: a 1, b 2"]
    assert "'a' has 22 training images, 'b' 2 (11.0:1)" in lines[3] and lines[3].startswith("warning:")
    with caplog.at_level(logging.INFO, logger="kerascv_tl.data.check"):
        apply_on_bad(check, "skip")
    assert any(r.levelno == logging.WARNING and "class imbalance" in r.getMessage() for r in caplog.records)

    even = DataCheck(ImageSource(["a", "b"], np.array([0] * 20 + [1] * 2, np.int32), ["x"] * 22), val)
    assert "warning" not in even.summary()  # exactly 10:1 does not warn

    def record(*labels):
        return DetectionRecord("i.png", np.zeros((len(labels), 4)) + [0, 0, 5, 5], list(labels), 10, 10)

    boxes = DetectionSource([record(0, 0, 1), record(0), record()], ["person", "dog", "cat"])
    detection = DataCheck(boxes, DetectionSource([record(2)], ["person", "dog", "cat"]))
    counts = detection.to_dict()["class_counts"]
    assert counts["unit"] == "boxes" and counts["train"] == {"person": 3, "dog": 1, "cat": 0}
    assert "training boxes per class: person 3, dog 1, cat 0" in detection.summary()
    assert "'cat' 0" in detection.summary()


def test_sources_without_class_labels_have_no_class_counts():
    from kerascv_tl.data.check import DataCheck
    from kerascv_tl.data.records import ImageSource

    tfds = ImageSource(["a", "b"], np.zeros(3, np.int32), None, "x", "train")
    check = DataCheck(tfds, tfds)
    assert check.to_dict()["class_counts"] is None and check.summary() == check.headline()
