"""`data.keep_classes`: the kept classes in the given order, spelled as the data spells them; other classes' images
(classification) and boxes (detection) dropped, their pixels made background (segmentation); counted in the log;
unknown names refused with the names the data has. Tiny files in tmp_path, plus coco128's real YOLO labels."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerascv_tl.config import ConfigError, load_config
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.keep_classes import keep_classes
from kerascv_tl.data.mask_records import IGNORE_INDEX, SegmentationSource
from kerascv_tl.data.readers import (
    detection_source_from_spec,
    map_mask_values,
    read_classification_sources,
    read_detection_sources,
    read_mask,
    read_segmentation_sources,
    segmentation_source_from_spec,
)
from kerascv_tl.data.records import ImageSource

LOGGER = "kerascv_tl.data.keep_classes"


def _data(task: str, *overrides: str):
    return load_config(None, [f"task={task}", *overrides]).data


def _png(path: Path, height: int = 20, width: int = 30, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------------------------------
# Detection


def _yolo(root: Path) -> Path:
    images = root / "images" / "train"
    for name in ("a", "b", "c"):
        _png(images / f"{name}.png")
    labels = root / "labels" / "train"
    labels.mkdir(parents=True)
    (labels / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.2 0.2\n2 0.7 0.7 0.2 0.2\n1 0.5 0.5 0.4 0.4\n")
    (labels / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # only a class left out: the image stays, box-less
    (root / "names.yaml").write_text("names: [car, Person, dog]\n")
    return images  # c.png has no label file: box-less from the start


def test_yolo_boxes_of_other_classes_dropped_labels_remapped_boxless_images_kept(tmp_path, caplog):
    images = _yolo(tmp_path)
    data = _data(
        "detection", "data.format=yolo", f"data.train={images}", f"data.classes={tmp_path}/names.yaml",
        "data.keep_classes=[DOG, person]",
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger=LOGGER):
        source = detection_source_from_spec(str(images), data)
    assert source.class_names == ["dog", "Person"]  # the given order, the data's spelling
    assert [Path(r.path).stem for r in source.records] == ["a", "b", "c"]
    a, b, c = source.records
    assert a.labels.tolist() == [1, 0, 1] and len(b.labels) == len(c.labels) == 0
    np.testing.assert_allclose(a.boxes, [[6, 4, 12, 8], [18, 12, 24, 16], [9, 6, 21, 14]], atol=1e-4)
    (line,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert line == (
        f"keep_classes DOG, person: 2 of 3 classes kept in {images}; "
        "2 boxes of other classes dropped, 2 of 3 images now have no boxes"
    )


def _coco(path: Path, boxes: list[tuple[int, int]]) -> Path:
    import json

    images = [{"id": i, "file_name": _png(path.parent / f"{i}.png").name} for i in (1, 2)]
    annotations = [
        {"id": n, "image_id": image, "category_id": category, "bbox": [2, 2, 8, 8], "iscrowd": 0}
        for n, (image, category) in enumerate(boxes)
    ]
    categories = [{"id": 3, "name": "cat"}, {"id": 5, "name": "Bird"}, {"id": 9, "name": "dog"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_coco_train_and_val_filtered_alike(tmp_path, caplog):
    train = _coco(tmp_path / "train" / "instances.json", [(1, 3), (1, 9), (2, 5), (2, 9)])
    val = _coco(tmp_path / "val" / "instances.json", [(1, 9), (2, 3)])
    data = _data("detection", f"data.train={train}", f"data.val={val}", "data.keep_classes=[bird, cat]")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        train_source, val_source = read_detection_sources(data, 0)
    assert train_source.class_names == val_source.class_names == ["Bird", "cat"]
    assert [r.labels.tolist() for r in train_source.records] == [[1], [0]]
    assert [r.labels.tolist() for r in val_source.records] == [[], [1]]  # image 1 stays, now box-less
    assert "2 boxes of other classes dropped, 0 of 2 images now have no boxes" in caplog.text
    assert "1 boxes of other classes dropped, 1 of 2 images now have no boxes" in caplog.text
    # `kerascv-tl evaluate --data`: the run's (kept) classes, read from data holding them all.
    assert detection_source_from_spec(str(val), data, ["Bird", "cat"]).num_boxes == 1


def _voc(root: Path, objects: dict[str, list[str]]) -> Path:
    (root / "Annotations").mkdir(parents=True)
    for stem, names in objects.items():
        _png(root / "JPEGImages" / f"{stem}.jpg")
        boxes = "".join(
            f"<object><name>{n}</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
            for n in names
        )
        (root / "Annotations" / f"{stem}.xml").write_text(f"<annotation>{boxes}</annotation>")
    return root


def test_voc_val_with_other_and_missing_classes(tmp_path):
    # VOC's classes are the object names found: val holds a class training dropped, and lacks a kept one.
    train = _voc(tmp_path / "train", {"a": ["cat", "dog", "bird"], "b": ["dog"]})
    val = _voc(tmp_path / "val", {"c": ["cat", "horse"]})
    data = _data(
        "detection", "data.format=voc", f"data.train={train}", f"data.val={val}", "data.keep_classes=[dog,cat]"
    )
    train_source, val_source = read_detection_sources(data, 0)
    assert train_source.class_names == val_source.class_names == ["dog", "cat"]
    assert [r.labels.tolist() for r in train_source.records] == [[1, 0], [0]]
    assert [r.labels.tolist() for r in val_source.records] == [[1]]


def test_unknown_name_names_it_the_data_and_its_classes(tmp_path):
    images = _yolo(tmp_path)
    data = _data(
        "detection", "data.format=yolo", f"data.train={images}", f"data.classes={tmp_path}/names.yaml",
        "data.keep_classes=[person, cat, horse]",
    )  # fmt: skip
    with pytest.raises(DataError) as error:
        read_detection_sources(data, 0)
    assert str(error.value) == (
        f"{images}: data.keep_classes names cat, horse, which this data does not have; its 3 classes: car, Person, dog"
    )
    assert error.value.path == str(images)


# --------------------------------------------------------------------------------------------------
# Segmentation


def _masks(root: Path, raw: np.ndarray, classes: str) -> Path:
    _png(root / "images" / "a.png", *raw.shape)
    (root / "masks").mkdir()
    Image.fromarray(raw.astype(np.uint8)).save(root / "masks" / "a.png")
    (root / "classes.yaml").write_text(classes)
    return root


def test_mask_pixels_of_other_classes_become_inserted_background_ignore_stays(tmp_path, caplog):
    # Raw ids: 0 unlabeled (data.ignore_index), 1 sky, 2 road, 4 person, 7 car; 9 is no class.
    raw = np.array([[0, 1, 2, 4], [7, 9, 4, 1]])
    root = _masks(tmp_path / "seg", raw, "{0: unlabeled, 1: sky, 2: road, 4: person, 7: car}\n")
    data = _data(
        "segmentation",
        f"data.train={root}",
        f"data.val={root}",
        "data.ignore_index=0",
        "data.keep_classes=[Car, PERSON]",
    )
    with caplog.at_level(logging.INFO, logger=LOGGER):
        train, val = read_segmentation_sources(data, 0)
    assert train.class_names == val.class_names == ["background", "car", "person"]
    mask = read_mask(train.records[0], train.lookup, train.num_classes)
    np.testing.assert_array_equal(mask, [[IGNORE_INDEX, 0, 0, 2], [1, IGNORE_INDEX, 2, 0]])
    assert caplog.text.count("keep_classes Car, PERSON: 2 of 4 classes kept") == 2
    assert "the pixels of 2 other classes become 'background' (class 0)" in caplog.text


def test_a_kept_background_class_is_reused_as_class_0(tmp_path):
    raw = np.array([[0, 1, 2, 3, 255]])
    root = _masks(tmp_path / "seg", raw, "[__Background__, cat, dog, bird]\n")
    data = _data("segmentation", f"data.train={root}", "data.keep_classes=[bird, __background__]")
    source = segmentation_source_from_spec(str(root), data)
    assert source.class_names == ["__Background__", "bird"]  # background first, the others in the given order
    np.testing.assert_array_equal(read_mask(source.records[0], source.lookup, 2), [[0, 0, 0, 1, IGNORE_INDEX]])


def test_lookup_composes_with_an_identity_source():
    source = SegmentationSource([], ["road", "sky", "person"], "masks", None)
    kept = keep_classes(source, ["person"])
    assert kept.class_names == ["background", "person"]
    assert map_mask_values(np.array([0, 1, 2, 3, 255]), kept.lookup, 2).tolist() == [0, 0, 1, 255, 255]


# --------------------------------------------------------------------------------------------------
# Classification


def test_folder_images_of_other_classes_dropped_before_the_split(tmp_path, caplog):
    for name, count in (("cats", 4), ("dogs", 6), ("Birds", 5)):
        for i in range(count):
            _png(tmp_path / "train" / name / f"{i}.png", 4, 4)
    data = _data(
        "classification", f"data.train={tmp_path}/train", "data.val_fraction=0.2", "data.keep_classes=[DOGS,birds]"
    )
    with caplog.at_level(logging.INFO, logger=LOGGER):
        train, val = read_classification_sources(data, 0)
    assert train.class_names == val.class_names == ["dogs", "Birds"]
    assert len(train) + len(val) == 11 and set(val.labels.tolist()) == {0, 1}
    assert all(Path(p).parent.name == ("dogs", "Birds")[label] for p, label in zip(train.paths, train.labels))
    assert "keep_classes DOGS, birds: 2 of 3 classes kept" in caplog.text
    assert "4 images of other classes dropped, 11 kept" in caplog.text
    with pytest.raises(DataError, match="names cows, which this data does not have; its 3 classes: Birds, cats, dogs"):
        read_classification_sources(
            _data("classification", f"data.train={tmp_path}/train", "data.keep_classes=[cows]"), 0
        )


# --------------------------------------------------------------------------------------------------
# Real data


def test_coco128_yolo_person(assets, caplog):
    root = assets / "coco128"
    data = _data(
        "detection", "data.format=yolo", f"data.train={root}/images/train2017", f"data.val={root}/images/val2017",
        f"data.classes={root}/detection.yaml", "data.keep_classes=[person]",
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger=LOGGER):
        train, val = read_detection_sources(data, 0)
    assert train.class_names == val.class_names == ["person"]
    for source, split in ((train, "train2017"), (val, "val2017")):
        labels = np.concatenate([r.labels for r in source.records])
        assert (labels == 0).all()
        images = {p.stem for p in (root / "images" / split).glob("*.jpg")}
        assert len(source.records) == len(images)  # images without people stay, as negatives
        person_lines = sum(
            line.split()[0] == "0"
            for path in (root / "labels" / split).glob("*.txt")
            if path.stem in images
            for line in path.read_text().splitlines()
            if line.strip()
        )
        assert len(labels) == person_lines
    assert caplog.text.count("keep_classes person: 1 of 80 classes kept") == 2


def test_refused_for_multi_label_and_tfds_classification():
    with pytest.raises(ConfigError, match="data.keep_classes is not used by multi_label"):
        load_config(None, ["task=multi_label", "data.keep_classes=[a]"])
    split = ImageSource(["a", "b"], np.zeros(3, np.int32), None, "flowers", "train", description="tfds:flowers[train]")
    with pytest.raises(DataError, match=r"tfds:flowers\[train\]: data.keep_classes is not offered for TFDS"):
        keep_classes(split, ["a"])
