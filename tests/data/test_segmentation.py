"""Segmentation data: class-name files, mask sources, read_mask and the tf.data pipeline."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import bad_files
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.data.decode import read_image_file
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import split_records
from kerascv_tl.data.mask_records import IGNORE_INDEX, MaskRecord, SegmentationSource
from kerascv_tl.data.readers import (
    mask_folder_source,
    pennfudan_segmentation_source,
    pennfudan_source,
    read_class_names,
    read_mask,
    read_segmentation_sources,
)
from kerascv_tl.data.segmentation_pipeline import segmentation_dataset, segmentation_examples
from kerascv_tl.data.synthetic import SHAPE_CLASSES, scene_sample, write_segmentation_dataset
from kerascv_tl.data.transforms import resize_image

SEED = 0
SCENE = 48
NUM_TRAIN, NUM_VAL = 6, 2
SHAPE_NAMES = ["background", *SHAPE_CLASSES]


def _save(path: Path, array: np.ndarray, mode: str | None = None, palette: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array, mode)
    if palette is not None:
        image.putpalette(palette)
    image.save(path)
    return path


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _nearest(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize with pixel-centre sampling, in plain NumPy."""
    height, width = mask.shape
    rows = np.minimum(((np.arange(size) + 0.5) * height / size).astype(int), height - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * width / size).astype(int), width - 1)
    return mask[rows][:, cols]


def _batches(ds: tf.data.Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(images.numpy(), masks.numpy()) for images, masks in ds]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_segmentation_dataset(
        tmp_path_factory.mktemp("seg"), num_train=NUM_TRAIN, num_val=NUM_VAL, image_size=SCENE, max_shapes=3, seed=SEED
    )


@pytest.fixture(scope="module")
def shapes_source(shapes) -> SegmentationSource:
    return mask_folder_source(shapes / "train")


# --------------------------------------------------------------------------------------------------
# Class names


def test_read_class_names_yaml_list_is_identity(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text("- background\n- cat\n- dog\n")
    assert read_class_names(str(path)) == (["background", "cat", "dog"], None)


def test_read_class_names_mapping_with_gaps_is_remapped(tmp_path):
    path = tmp_path / "ids.yaml"
    path.write_text("7: dog\n0: background\n3: cat\n")
    assert read_class_names(str(path)) == (["background", "cat", "dog"], {0: 0, 3: 1, 7: 2})


def test_read_class_names_classes_key_like_coco128(tmp_path):
    path = tmp_path / "segmentation.yaml"
    path.write_text(
        "train:\n  images: images/train2017\n  masks: masks/train2017\n"
        "classes:\n  0: unlabeled\n  1: person\n  2: bicycle\n  92: banner\n"
    )
    names, ids = read_class_names(str(path))
    assert names == ["unlabeled", "person", "bicycle", "banner"]
    assert ids == {0: 0, 1: 1, 2: 2, 92: 3}
    names_key = tmp_path / "names.yaml"
    names_key.write_text("names: [a, b]\n")
    assert read_class_names(str(names_key)) == (["a", "b"], None)


def test_read_class_names_json_and_comma_string(tmp_path):
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps(["background", "road"]))
    assert read_class_names(str(as_list)) == (["background", "road"], None)
    as_map = tmp_path / "map.json"
    as_map.write_text(json.dumps({"classes": {"0": "bg", "10": "car"}}))
    assert read_class_names(str(as_map)) == (["bg", "car"], {0: 0, 10: 1})
    assert read_class_names("background, cat,dog") == (["background", "cat", "dog"], None)


def test_read_class_names_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.yaml"):
        read_class_names(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: images\n")
    with pytest.raises(DataError, match="bad.yaml"):
        read_class_names(str(bad))
    dup = tmp_path / "dup.yaml"
    dup.write_text("- cat\n- cat\n")
    with pytest.raises(DataError, match="dup.yaml.*duplicate"):
        read_class_names(str(dup))


# --------------------------------------------------------------------------------------------------
# The synthetic dataset


def test_mask_folder_source_reads_the_synthetic_dataset(shapes, shapes_source):
    assert shapes_source.class_names == SHAPE_NAMES and shapes_source.num_classes == 4
    assert len(shapes_source) == NUM_TRAIN and shapes_source.skipped == []
    assert shapes_source.lookup is None  # classes.yaml from one level above train/, ids 0..3
    for index, record in enumerate(shapes_source.records):
        assert Path(record.image) == shapes / "train" / "images" / f"{index:05d}.png"
        assert Path(record.mask) == shapes / "train" / "masks" / f"{index:05d}.png"
        assert (record.width, record.height) == (SCENE, SCENE)
        expected = scene_sample(SEED, "train", index, SCENE, 3).semantic_mask
        np.testing.assert_array_equal(read_mask(record, shapes_source.lookup, 4), expected)


def test_eval_pipeline_shapes_values_and_nearest_masks(shapes_source):
    batches = _batches(segmentation_dataset(shapes_source, 32, 4, training=False))
    assert [b[0].shape for b in batches] == [(4, 32, 32, 3), (2, 32, 32, 3)]  # last batch kept
    assert [b[1].shape for b in batches] == [(4, 32, 32), (2, 32, 32)]
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int32
    images = np.concatenate([b[0] for b in batches])
    masks = np.concatenate([b[1] for b in batches])
    for index, record in enumerate(shapes_source.records):  # source order
        original = read_image_file(record.image)
        np.testing.assert_allclose(images[index], resize_image(original, 32).numpy(), atol=1e-4)
        raw = read_mask(record, None, 4)
        np.testing.assert_array_equal(masks[index], _nearest(raw, 32))


def test_training_batches_are_reproducible_per_seed(shapes_source):
    first = _batches(segmentation_dataset(shapes_source, 32, 3, training=True, seed=1))
    again = _batches(segmentation_dataset(shapes_source, 32, 3, training=True, seed=1))
    other = _batches(segmentation_dataset(shapes_source, 32, 3, training=True, seed=2))
    assert len(first) == 2 and first[0][0].shape == (3, 32, 32, 3) and first[0][1].shape == (3, 32, 32)
    for (image_a, mask_a), (image_b, mask_b) in zip(first, again):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(mask_a, mask_b)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    assert all(0.0 <= b[0].min() and b[0].max() <= 255.0 for b in first)
    # The next epoch is shuffled and cropped anew.
    epoch1 = _batches(segmentation_dataset(shapes_source, 32, 3, training=True, seed=1, epoch=1))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, epoch1))


def test_training_masks_only_hold_values_of_the_original(shapes_source):
    for index in (0, 1, 2):
        record = shapes_source.records[index]
        original = set(np.unique(read_mask(record, None, 4)).tolist())
        repeated = shapes_source.subset([index] * 6, "one image, six times")  # six different random crops
        for _, mask in _batches(segmentation_dataset(repeated, 40, 1, training=True, seed=index)):
            assert set(np.unique(mask).tolist()) <= original


QUADRANT_COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255], [0, 255, 0]], np.float32)


def test_training_crop_and_flip_keep_image_and_mask_aligned(tmp_path):
    # Four quadrants, each its own class and colour; non-square so the crop has room to vary.
    height, width = 48, 64
    mask = np.zeros((height, width), np.uint8)
    mask[: height // 2, : width // 2] = 1
    mask[: height // 2, width // 2 :] = 2
    mask[height // 2 :, : width // 2] = 3
    image = QUADRANT_COLOURS[mask].astype(np.uint8)
    record = MaskRecord(
        str(_save(tmp_path / "quad.png", image)), str(_save(tmp_path / "quad_mask.png", mask)), width, height
    )
    # The same pair 24 times: each copy gets its own random crop and flip.
    source = SegmentationSource([record] * 24, ["black", "red", "blue", "green"], "quadrants")
    fractions, flipped, upright = [], 0, 0
    for images, masks in _batches(segmentation_dataset(source, 32, 1, training=True, seed=3)):
        out_image, out_mask = images[0], masks[0]
        assert set(np.unique(out_mask).tolist()) <= {0, 1, 2, 3}
        colour_class = np.argmin(((out_image[:, :, None, :] - QUADRANT_COLOURS) ** 2).sum(-1), axis=-1)
        # Away from class borders (where bilinear image pixels blend), the colour gives the mask's class.
        padded = np.pad(out_mask, 1, mode="edge")
        interior = np.ones_like(out_mask, bool)
        for dy in range(3):
            for dx in range(3):
                interior &= padded[dy : dy + 32, dx : dx + 32] == out_mask
        assert interior.mean() > 0.5
        np.testing.assert_array_equal(colour_class[interior], out_mask[interior])
        fractions.append(float((out_mask == 1).mean()))
        red_x, blue_x = np.nonzero(out_mask == 1)[1], np.nonzero(out_mask == 2)[1]
        if red_x.size and blue_x.size:
            if red_x.mean() > blue_x.mean():
                flipped += 1
            else:
                upright += 1
    assert flipped > 0 and upright > 0  # the joint flip happens, and not always
    assert max(fractions) - min(fractions) > 0.1  # the crop's scale and position vary


def test_pipeline_skips_and_names_the_pair_whose_size_differs(tmp_path, capfd):
    image = _save(tmp_path / "small.png", _noise(20, 30))
    mask = _save(tmp_path / "small_mask.png", np.zeros((20, 30), np.uint8))
    good = MaskRecord(str(_save(tmp_path / "good.png", _noise(20, 30))), str(mask), 30, 20)
    source = SegmentationSource([MaskRecord(str(image), str(mask), 40, 20), good], ["a", "b"], "wrong size")
    capfd.readouterr()
    ((images, _),) = _batches(segmentation_dataset(source, 16, 2, training=False))
    err = capfd.readouterr().err
    assert images.shape[0] == 1 and "skipped 1 file(s) that failed to load" in err and f"{image} (mask {mask})" in err
    # Right image, wrong mask (written after the source was read): left out and named, in training too.
    right = _save(tmp_path / "right.png", _noise(20, 40))
    source = SegmentationSource([MaskRecord(str(right), str(mask), 40, 20), good], ["a", "b"], "wrong mask")
    ((images, _),) = _batches(segmentation_dataset(source, 16, 2, training=True))
    err = capfd.readouterr().err
    assert images.shape[0] == 1 and f"{right} (mask {mask})" in err


def test_segmentation_examples_are_at_original_resolution(shapes_source):
    examples = list(segmentation_examples(shapes_source.subset([0, 1], "two")))
    assert [record for record, _, _ in examples] == shapes_source.records[:2]
    for index, (record, image, mask) in enumerate(examples):
        assert image.dtype == np.uint8 and image.shape == (SCENE, SCENE, 3)
        np.testing.assert_array_equal(image, read_image_file(record.image))
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, scene_sample(SEED, "train", index, SCENE, 3).semantic_mask)


# --------------------------------------------------------------------------------------------------
# Mask formats and folder problems


def test_palette_mask_gives_its_indices(tmp_path):
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)
    path = _save(tmp_path / "palette.png", indices, mode="P", palette=palette)
    with Image.open(path) as check:
        assert check.mode == "P"
    np.testing.assert_array_equal(read_mask(str(path), None, 3), indices)
    np.testing.assert_array_equal(read_mask(path, None, 2), [[0, 1, 255], [255, 1, 0]])


def test_sixteen_bit_mask_through_the_lookup(tmp_path):
    values = np.array([[0, 1], [300, 999]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    root = tmp_path / "data"
    _save(root / "images" / "a.png", _noise(2, 2))
    (root / "masks").mkdir()
    path.rename(root / "masks" / "a.png")
    source = mask_folder_source(root, classes=str(_classes(tmp_path, "0: bg\n1: cat\n300: dog\n")))
    assert source.class_names == ["bg", "cat", "dog"]
    np.testing.assert_array_equal(read_mask(source.records[0], source.lookup, 3), [[0, 1], [2, IGNORE_INDEX]])


def _classes(folder: Path, text: str) -> Path:
    path = folder / "classes_spec.yaml"
    path.write_text(text)
    return path


def test_rgb_mask_is_a_data_error_naming_the_file(tmp_path):
    path = _save(tmp_path / "colour_mask.png", _noise(8, 8))
    with pytest.raises(DataError, match="colour_mask.png.*single-channel"):
        read_mask(str(path), None, 3)
    root = tmp_path / "data"
    _save(root / "images" / "x.jpg", _noise(8, 8))
    _save(root / "masks" / "x.png", _noise(8, 8, seed=1))
    with pytest.raises(DataError, match=r"masks/x\.png"):
        mask_folder_source(root, classes="a,b")


def test_unpaired_and_wrong_size_files_are_skipped_and_named(tmp_path, caplog):
    root = tmp_path / "data"
    _save(root / "images" / "sub" / "good.jpg", _noise(10, 12))
    _save(root / "masks" / "sub" / "good.png", np.ones((10, 12), np.uint8))
    _save(root / "images" / "lonely.png", _noise(10, 12))
    _save(root / "masks" / "orphan.png", np.zeros((10, 12), np.uint8))
    _save(root / "images" / "big.png", _noise(10, 12))
    _save(root / "masks" / "big.png", np.zeros((11, 12), np.uint8))
    (root / "classes.yaml").write_text("- background\n- thing\n")
    with caplog.at_level(logging.WARNING, logger="kerascv_tl.data.readers.masks"):
        source = mask_folder_source(root)
    assert [
        (Path(r.image).relative_to(root).as_posix(), Path(r.mask).relative_to(root).as_posix()) for r in source.records
    ] == [("images/sub/good.jpg", "masks/sub/good.png")]
    assert (source.records[0].width, source.records[0].height) == (12, 10)
    skipped = {Path(file).relative_to(root).as_posix(): reason for file, reason in source.skipped}
    assert set(skipped) == {"images/lonely.png", "masks/orphan.png", "masks/big.png"}
    assert "no mask" in skipped["images/lonely.png"]
    assert "no image" in skipped["masks/orphan.png"]
    size_reason = skipped["masks/big.png"]
    assert "images/big.png" in size_reason and "masks/big.png" in size_reason
    assert "12x11" in size_reason and "12x10" in size_reason
    assert "skipped 3 file(s)" in caplog.text and "lonely.png" in caplog.text


def test_ignore_value_and_unknown_ids_become_ignore_index(tmp_path):
    root = tmp_path / "data"
    raw = np.array([[0, 1, 2], [7, 200, 255]], np.uint8)
    _save(root / "images" / "a.png", _noise(2, 3))
    _save(root / "masks" / "a.png", raw)
    source = mask_folder_source(root, classes="background,cat,dog", ignore_value=200)
    assert source.class_names == ["background", "cat", "dog"]
    np.testing.assert_array_equal(
        read_mask(source.records[0], source.lookup, source.num_classes), [[0, 1, 2], [255, 255, 255]]
    )
    # ignore_value 0: the class named by it is not a class, the others shift down.
    source = mask_folder_source(root, classes="unlabeled,cat,dog", ignore_value=0)
    assert source.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(
        read_mask(source.records[0], source.lookup, source.num_classes), [[255, 0, 1], [255, 255, 255]]
    )
    images, masks = next(iter(segmentation_dataset(source, 6, 1, training=False)))
    assert set(np.unique(masks.numpy()).tolist()) <= {0, 1, 255}


def test_folder_without_pairs_or_classes_is_a_data_error(tmp_path):
    root = tmp_path / "data"
    _save(root / "images" / "a.png", _noise(4, 4))
    (root / "masks").mkdir()
    with pytest.raises(DataError, match="data.classes"):
        mask_folder_source(root)
    with pytest.raises(DataError, match="no image/mask pairs"):
        mask_folder_source(root, classes="a,b")
    with pytest.raises(DataError, match="masks"):
        mask_folder_source(tmp_path / "nowhere", classes="a,b")


# --------------------------------------------------------------------------------------------------
# Config


def _data_config(**values) -> SimpleNamespace:
    defaults = {"train": "", "val": None, "format": "auto", "classes": None, "val_fraction": 0.2}
    defaults.update(values)
    return SimpleNamespace(**defaults)


def test_source_from_config_with_val_folder_and_split(shapes, tmp_path):
    train, val = read_segmentation_sources(
        _data_config(train=str(shapes / "train"), val=str(shapes / "val"), format="masks"), seed=0
    )
    assert (len(train), len(val)) == (NUM_TRAIN, NUM_VAL) and val.class_names == SHAPE_NAMES
    train, val = read_segmentation_sources(_data_config(train=str(shapes / "train"), val_fraction=0.34), seed=5)
    assert (len(train), len(val)) == (4, 2)
    assert not {r.image for r in train.records} & {r.image for r in val.records}
    other = tmp_path / "other"
    _save(other / "images" / "a.png", _noise(4, 4))
    _save(other / "masks" / "a.png", np.zeros((4, 4), np.uint8))
    (other / "classes.yaml").write_text("- background\n- car\n")
    with pytest.raises(DataError, match="other.*differ from the training classes"):
        read_segmentation_sources(_data_config(train=str(shapes / "train"), val=str(other)), seed=0)


def test_source_from_config_reads_ignore_index_and_rejects_other_formats(tmp_path):
    root = tmp_path / "data"
    _save(root / "images" / "a.png", _noise(2, 2))
    _save(root / "masks" / "a.png", np.array([[0, 1], [2, 9]], np.uint8))
    config = _data_config(train=str(root), val=str(root), classes="void,a,b", ignore_index=0)
    train, _ = read_segmentation_sources(config, seed=0)
    assert train.class_names == ["a", "b"]
    with pytest.raises(DataError, match="data.format"):
        read_segmentation_sources(_data_config(train=str(root), format="coco"), seed=0)


# --------------------------------------------------------------------------------------------------
# Real assets


def test_pennfudan_semantic_masks_and_split_match_detection(assets):
    root = assets / "pennfudan"
    source = pennfudan_segmentation_source(root)
    assert len(source) == 170 and source.class_names == ["background", "person"]
    for record in source.records[::17]:
        with Image.open(record.mask) as raw:
            instances = np.asarray(raw)
        mask = read_mask(record, source.lookup, source.num_classes)
        assert set(np.unique(mask).tolist()) == {0, 1}
        assert instances.max() >= 1  # an instance mask, with pedestrians 1..k
        np.testing.assert_array_equal(mask, (instances > 0).astype(np.uint8))
    _, seg_val = split_records(source, 34, 42)
    _, det_val = split_records(pennfudan_source(root), 34, 42)
    assert len(seg_val) == 34
    assert [r.image for r in seg_val.records] == [r.path for r in det_val.records]


def test_coco128_masks_with_panoptic_ids(assets):
    root = assets / "coco128"
    source = mask_folder_source(root, classes=str(root / "segmentation.yaml"), ignore_value=0)
    assert len(source) == 200
    assert len(source.skipped) == 56 and all("no mask" in reason for _, reason in source.skipped)
    assert source.num_classes == 129 and "unlabeled" not in source.class_names
    person = source.class_names.index("person")
    for record in source.records:
        with Image.open(record.mask) as raw:
            values = np.asarray(raw)
        if (values == 1).any() and (values == 0).any():
            break
    else:
        pytest.fail("no coco128 mask holds both person (1) and unlabeled (0) pixels")
    mask = read_mask(record, source.lookup, source.num_classes)
    assert (mask[values == 1] == person).all()
    assert (mask[values == 0] == IGNORE_INDEX).all()
    assert (mask[(values != 0)] < source.num_classes).all()  # every other id in the mask is a known class


def test_mask_of_an_exif_rotated_photo_stays_on_its_content(tmp_path):
    # The mask is drawn on the upright photo, as annotation tools show it; decoding turns the photo upright.
    upright = np.zeros((24, 40, 3), np.uint8)
    upright[4:12, 28:36] = (255, 0, 0)
    (tmp_path / "images").mkdir()
    bad_files.exif_rotated_jpeg(tmp_path / "images" / "phone.jpg", upright)
    mask = np.zeros((24, 40), np.uint8)
    mask[4:12, 28:36] = 1
    _save(tmp_path / "masks" / "phone.png", mask)
    source = mask_folder_source(tmp_path, "background,red")
    assert [(r.width, r.height) for r in source.records] == [(40, 24)]
    ((images, masks),) = _batches(segmentation_dataset(source, 40, 1, training=False))
    red = images[0][masks[0] == 1]
    assert len(red) > 0 and red[:, 0].mean() > 200 and red[:, 1:].mean() < 60
    assert images[0][masks[0] == 0][:, 0].mean() < 60
