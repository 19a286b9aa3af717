"""`detect_layout`: which task and reader a data folder is laid out for, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.layout import detect_layout


def _image(path: Path, suffix: str = ".png") -> Path:
    path = path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    return path


def _class_folders(root: Path, classes=("cat", "dog"), per_class=2) -> Path:
    for name in classes:
        for i in range(per_class):
            _image(root / name / f"{i}")
    return root


def _masks(root: Path) -> Path:
    _image(root / "images" / "a")
    (root / "masks").mkdir(parents=True)
    Image.new("L", (8, 8), 1).save(root / "masks" / "a.png")
    return root


def _voc(root: Path) -> Path:
    _image(root / "JPEGImages" / "a", ".jpg")
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "a.xml").write_text("<annotation><filename>a.jpg</filename></annotation>")
    return root


def _coco(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    return path


def test_class_folders_under_train_and_val_are_split_not_classes(tmp_path):
    _class_folders(tmp_path / "train")
    _class_folders(tmp_path / "val", classes=("cat",))  # a validation folder may hold only some classes
    layout = detect_layout(tmp_path)
    assert (layout.task, layout.format) == ("classification", "folder")
    assert layout.train == str(tmp_path / "train") and layout.val == str(tmp_path / "val")
    config = load_config(None, layout.overrides())
    assert (config.task, config.data.format, config.data.train, config.data.val) == (
        "classification",
        "folder",
        str(tmp_path / "train"),
        str(tmp_path / "val"),
    )


@pytest.mark.parametrize("held_out", ["valid", "validation", "test"])
def test_other_split_names_validate(tmp_path, held_out):
    _class_folders(tmp_path / "train")
    _class_folders(tmp_path / held_out)
    assert detect_layout(tmp_path).val == str(tmp_path / held_out)


def test_val_wins_over_test_and_test_is_named_as_left_out(tmp_path):
    for split in ("train", "val", "test"):
        _class_folders(tmp_path / split)
    layout = detect_layout(tmp_path)
    assert layout.val == str(tmp_path / "val") and "test/ left for kerascv-tl evaluate" in layout.description


def test_class_folders_alone_use_a_seeded_split(tmp_path):
    layout = detect_layout(_class_folders(tmp_path, classes=("a", "b", "c")))
    assert layout.val is None and "3 classes: a, b, c" in layout.description
    assert "data.val=null" in layout.overrides()


def test_images_and_masks_are_segmentation(tmp_path):
    layout = detect_layout(_masks(tmp_path / "train"))
    assert (layout.task, layout.format, layout.val) == ("segmentation", "masks", None)
    _masks(tmp_path / "val")
    layout = detect_layout(tmp_path)
    assert (layout.task, layout.train, layout.val) == ("segmentation", str(tmp_path / "train"), str(tmp_path / "val"))


def test_voc_folder_is_detection(tmp_path):
    layout = detect_layout(_voc(tmp_path / "VOC2012"))
    assert (layout.task, layout.format, layout.train) == ("detection", "voc", str(tmp_path / "VOC2012"))


def test_yolo_ultralytics_layout_with_names_yaml(tmp_path):
    for split in ("train", "val"):
        _image(tmp_path / "images" / split / "a")
        (tmp_path / "labels" / split).mkdir(parents=True)
        (tmp_path / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "data.yaml").write_text("names: [person]\n")
    layout = detect_layout(tmp_path)
    assert (layout.task, layout.format) == ("detection", "yolo")
    assert layout.train == str(tmp_path / "images" / "train") and layout.val == str(tmp_path / "images" / "val")
    assert layout.data == {"classes": str(tmp_path / "data.yaml")}


def test_yolo_roboflow_split_folders_with_classes_txt_above(tmp_path):
    for split in ("train", "valid"):
        _image(tmp_path / split / "images" / "a")
        (tmp_path / split / "labels").mkdir(parents=True)
    (tmp_path / "classes.txt").write_text("person\ncar\n")
    layout = detect_layout(tmp_path)
    assert (layout.format, layout.train, layout.val) == (
        "yolo",
        str(tmp_path / "train" / "images"),
        str(tmp_path / "valid" / "images"),
    )
    from kerascv_tl.data.readers.yolo import yolo_names

    assert yolo_names(layout.data["classes"]) == ["person", "car"]


def test_yolo_without_class_names_says_what_to_add(tmp_path):
    _image(tmp_path / "images" / "a")
    (tmp_path / "labels").mkdir()
    with pytest.raises(DataError, match="no class names: add a data.yaml"):
        detect_layout(tmp_path)


def test_coco_layouts(tmp_path):
    # COCO's own: annotations/instances_<split>.json, images in <split>/
    coco = tmp_path / "coco"
    _coco(coco / "annotations" / "instances_train2017.json")
    _coco(coco / "annotations" / "instances_val2017.json")
    (coco / "train2017").mkdir()
    (coco / "val2017").mkdir()
    layout = detect_layout(coco)
    assert (layout.task, layout.format) == ("detection", "coco")
    assert layout.train.endswith("instances_train2017.json") and layout.val.endswith("instances_val2017.json")
    assert layout.data == {"image_root": str(coco / "train2017"), "val_image_root": str(coco / "val2017")}
    # Roboflow's: <split>/_annotations.coco.json beside the images; a classes.json is not mistaken for COCO
    robo = tmp_path / "robo"
    for split in ("train", "valid"):
        _coco(robo / split / "_annotations.coco.json")
    (robo / "train" / "classes.json").write_text('["a", "b"]')
    layout = detect_layout(robo)
    assert layout.train == str(robo / "train" / "_annotations.coco.json")
    assert layout.val == str(robo / "valid" / "_annotations.coco.json")
    # a JSON file given directly
    assert detect_layout(robo / "train" / "_annotations.coco.json").format == "coco"


def test_a_csv_is_classification(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\n")
    assert detect_layout(tmp_path / "labels.csv").format == "csv"


def test_pennfudan_fits_two_tasks_and_task_chooses(tmp_path):
    for folder in ("PNGImages", "PedMasks", "Annotation"):
        (tmp_path / folder).mkdir()
    with pytest.raises(DataError, match="more than one layout fits.*choose with --task"):
        detect_layout(tmp_path)
    assert detect_layout(tmp_path, task="segmentation").task == "segmentation"
    assert detect_layout(tmp_path, task="detection").format == "pennfudan"


def test_ambiguous_and_unrecognised_layouts_are_refused(tmp_path):
    both = _voc(_masks(tmp_path / "both"))
    with pytest.raises(DataError, match=r"more than one layout fits: images/ \+ masks/ .*Pascal VOC"):
        detect_layout(both)
    with pytest.raises(DataError, match="--task classification asked, but the folder holds images/"):
        detect_layout(_masks(tmp_path / "seg"), task="classification")

    flat = tmp_path / "flat"
    for i in range(3):
        _image(flat / f"{i}")
    with pytest.raises(DataError, match=r"flat: no data layout recognised \(3 images but no labels\); expected"):
        detect_layout(flat)

    mixed = tmp_path / "mixed"
    _class_folders(mixed / "train")
    _class_folders(mixed, classes=("extra",))
    with pytest.raises(DataError, match=r"split folders \(train\) and also image folders \['extra'\]"):
        detect_layout(mixed)

    differ = tmp_path / "differ"
    _masks(differ / "train")
    _voc(differ / "val")
    with pytest.raises(DataError, match="train/ is images/ \\+ masks/ but val/ is Pascal VOC"):
        detect_layout(differ)

    only_val = tmp_path / "only_val"
    _class_folders(only_val / "val")
    with pytest.raises(DataError, match="has val/ but no train/"):
        detect_layout(only_val)
    with pytest.raises(DataError, match="no such file or folder"):
        detect_layout(tmp_path / "missing")
