"""`data.keep_classes`: the kept classes in the given order; other classes' images, boxes or pixels dropped (pixels:
to background); counted in the log; unknown names refused with the available ones."""

import logging

import numpy as np
import pytest

from kerascv_tl.config import load_config
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.keep_classes import keep_classes
from kerascv_tl.data.mask_records import IGNORE_INDEX, SegmentationSource
from kerascv_tl.data.readers import map_mask_values, read_detection_sources, read_segmentation_sources
from kerascv_tl.data.records import DetectionRecord, DetectionSource, ImageSource


def _detection():
    records = [
        DetectionRecord("a.png", [[0, 0, 4, 4], [1, 1, 5, 5], [2, 2, 6, 6]], [0, 1, 2], 8, 8),
        DetectionRecord("b.png", [[0, 0, 4, 4]], [0], 8, 8),
        DetectionRecord("c.png", np.zeros((0, 4)), [], 8, 8),
    ]
    return DetectionSource(records, ["car", "Person", "dog"], "boxes.json")


def test_detection_keeps_named_boxes_remapped_and_keeps_emptied_images(caplog):
    with caplog.at_level(logging.INFO, logger="kerascv_tl.data.keep_classes"):
        kept = keep_classes(_detection(), ["dog", "person"])
    assert kept.class_names == ["dog", "Person"]  # the given order, spelled as the data spells them
    assert [r.labels.tolist() for r in kept.records] == [[1, 0], [], []]
    np.testing.assert_array_equal(kept.records[0].boxes, [[1, 1, 5, 5], [2, 2, 6, 6]])
    assert len(kept.records) == 3
    assert "2 of 3 classes kept" in caplog.text and "2 box(es) of other classes dropped" in caplog.text
    assert "2 of 3 images have no boxes now (1 emptied by the filter)" in caplog.text


def test_unknown_class_names_the_data_and_what_it_has():
    with pytest.raises(DataError, match=r"boxes.json: data.keep_classes names cat, not a class of this data \(car,"):
        keep_classes(_detection(), ["cat"])
    assert keep_classes(_detection(), None).class_names == ["car", "Person", "dog"]


def test_segmentation_turns_other_classes_into_background_and_keeps_ignored_pixels():
    raw = np.array([0, 1, 2, 3, 9, 255])  # 9: past the lookup; 255: ignored by the reader's lookup
    lookup = np.array([0, 1, 2, 3], np.uint8)
    source = SegmentationSource([], ["sky", "road", "person", "car"], "masks", lookup)
    inserted = keep_classes(source, ["car", "person"])
    assert inserted.class_names == ["background", "car", "person"]
    values = map_mask_values(raw, inserted.lookup, inserted.num_classes).tolist()
    assert values == [0, 0, 2, 1, IGNORE_INDEX, IGNORE_INDEX]
    source = SegmentationSource([], ["Background", "person", "car"], "masks", None)
    reused = keep_classes(source, ["person", "background"])
    assert reused.class_names == ["person", "Background"]
    assert map_mask_values(np.array([0, 1, 2, 7]), reused.lookup, 2).tolist() == [1, 0, 1, IGNORE_INDEX]


def test_classification_drops_other_classes_images():
    source = ImageSource(["a", "b", "c"], np.array([0, 1, 2, 1, 0]), ["0", "1", "2", "3", "4"], description="x")
    kept = keep_classes(source, ["B", "a"])
    assert kept.class_names == ["b", "a"] and kept.labels.tolist() == [1, 0, 0, 1]
    assert kept.paths == ["0", "1", "3", "4"]


def test_synthetic_folders_filter_train_and_val_alike(tmp_path):
    from kerascv_tl.data.synthetic import write_segmentation_dataset

    root = write_segmentation_dataset(tmp_path / "seg", num_train=4, num_val=2, image_size=32, seed=0)
    config = load_config(
        None,
        [
            "task=segmentation",
            f"data.train={root}/train",
            f"data.val={root}/val",
            f"data.classes={root}/classes.yaml",
            "data.keep_classes=[square]",
        ],
    )
    train, val = read_segmentation_sources(config.data, 0)
    assert train.class_names == val.class_names == ["background", "square"]


def test_coco128_person_boxes(assets):
    config = load_config(
        None,
        [
            "task=detection",
            "data.format=yolo",
            f"data.train={assets}/coco128/images/train2017",
            f"data.val={assets}/coco128/images/val2017",
            f"data.classes={assets}/coco128/detection.yaml",
            "data.keep_classes=[person]",
        ],
    )
    train, val = read_detection_sources(config.data, 0)
    assert train.class_names == val.class_names == ["person"]
    for source, split in ((train, "train2017"), (val, "val2017")):
        labels = np.concatenate([r.labels for r in source.records])
        assert (labels == 0).all() and len(source.records) == 128  # images without people stay
        images = {p.stem for p in (assets / "coco128" / "images" / split).glob("*.jpg")}
        expected = sum(
            line.split()[0] == "0"
            for path in (assets / "coco128" / "labels" / split).glob("*.txt")
            if path.stem in images
            for line in path.read_text().splitlines()
            if line.strip()
        )
        assert len(labels) == expected
