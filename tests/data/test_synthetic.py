"""The synthetic shapes dataset: exact labels, determinism, writers, idempotence, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from kerascv_tl.data.synthetic import (
    MANIFEST_NAME,
    SHAPE_CLASSES,
    ShapesSample,
    classification_sample,
    main,
    render_shapes,
    scene_sample,
    write_classification_dataset,
    write_detection_dataset,
    write_segmentation_dataset,
    writers,
)


def _render(seed: int, **kwargs) -> ShapesSample:
    kwargs.setdefault("image_size", (40, 56))
    kwargs.setdefault("num_shapes", 5)
    return render_shapes(np.random.default_rng(seed), **kwargs)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root):
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _dilate(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    padded = np.pad(mask, radius)
    h, w = mask.shape
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def _assert_labels_exact(sample: ShapesSample) -> None:
    """Boxes, masks and pixels agree: the contract every task relies on."""
    h, w = sample.instance_mask.shape
    n = len(sample.class_ids)
    assert sample.image.shape == (h, w, 3) and sample.image.dtype == np.uint8
    assert sample.boxes.shape == (n, 4) and sample.boxes.dtype == np.float32
    assert sample.class_ids.dtype == np.int32
    assert sample.instance_mask.dtype == np.uint8 and sample.semantic_mask.dtype == np.uint8
    assert set(np.unique(sample.instance_mask).tolist()) <= set(range(n + 1))
    background = sample.instance_mask == 0
    assert np.all(sample.semantic_mask[background] == 0)
    for k in range(1, n + 1):
        inside = sample.instance_mask == k
        ys, xs = np.nonzero(inside)
        assert xs.size > 0, f"instance {k} has no visible pixel"
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        np.testing.assert_array_equal(sample.boxes[k - 1], np.asarray(expected, np.float32))
        assert np.all(sample.semantic_mask[inside] == sample.class_ids[k - 1] + 1)
        # Each shape has one colour, clearly unlike the background pixels it borders.
        colours = np.unique(sample.image[inside], axis=0)
        assert len(colours) == 1
        around = sample.image[_dilate(inside) & background].astype(np.int16)
        if around.size:
            assert np.abs(around - colours[0].astype(np.int16)).mean() > 30, "shape blends into the background"


def test_render_is_deterministic_and_seed_dependent():
    a, b, c = _render(7), _render(7), _render(8)
    for field in ("image", "boxes", "class_ids", "instance_mask", "semantic_mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("seed", range(12))
def test_boxes_masks_and_pixels_agree(seed):
    sample = _render(seed, num_shapes=seed % 6)
    assert sample.image.shape == (40, 56, 3)
    assert len(sample.class_ids) <= seed % 6
    assert sample.image.reshape(-1, 3).std(axis=0).sum() > 0 or seed % 6 == 0
    _assert_labels_exact(sample)


def test_render_respects_class_ids_and_square_size():
    sample = render_shapes(np.random.default_rng(1), 32, 3, class_ids=[2, 0, 1])
    assert sample.image.shape == (32, 32, 3)
    assert sample.class_ids.tolist() == [2, 0, 1]
    _assert_labels_exact(sample)


def test_render_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        render_shapes(rng, 32, 2, class_ids=[0])
    with pytest.raises(ValueError):
        render_shapes(rng, 32, 1, class_ids=[len(SHAPE_CLASSES)])
    with pytest.raises(ValueError):
        render_shapes(rng, 32, 1, min_size_fraction=0.7, max_size_fraction=0.5)


def test_empty_render_has_no_labels():
    sample = _render(3, num_shapes=0)
    assert sample.boxes.shape == (0, 4) and sample.class_ids.shape == (0,)
    assert not sample.instance_mask.any() and not sample.semantic_mask.any()


def test_single_shapes_of_every_class_are_never_dropped():
    for seed in range(6):
        for class_id in range(len(SHAPE_CLASSES)):
            sample = render_shapes(np.random.default_rng(seed), 24, 1, class_ids=[class_id])
            assert sample.class_ids.tolist() == [class_id]
            _assert_labels_exact(sample)


def test_classification_writer(tmp_path):
    root = write_classification_dataset(tmp_path / "cls", train_per_class=3, val_per_class=2, image_size=24, seed=5)
    for split, count in (("train", 3), ("val", 2)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(SHAPE_CLASSES)
        for class_id, name in enumerate(SHAPE_CLASSES):
            files = sorted((root / split / name).iterdir())
            assert [p.name for p in files] == [f"{name}_{i:04d}.png" for i in range(count)]
            for index, path in enumerate(files):
                with Image.open(path) as im:
                    assert im.mode == "RGB" and im.size == (24, 24)
                    pixels = np.asarray(im)
                sample = classification_sample(5, split, class_id, index, 24)
                np.testing.assert_array_equal(pixels, sample.image)
                assert sample.class_ids.tolist() == [class_id]
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["task"] == "classification" and manifest["args"]["seed"] == 5
    assert "format_version" in manifest


def test_writers_are_byte_deterministic_and_seed_dependent(tmp_path):
    a = write_detection_dataset(tmp_path / "a", num_train=4, num_val=2, image_size=32, seed=1)
    b = write_detection_dataset(tmp_path / "b", num_train=4, num_val=2, image_size=32, seed=1)
    c = write_detection_dataset(tmp_path / "c", num_train=4, num_val=2, image_size=32, seed=2)
    assert _files(a) == _files(b)
    assert (a / "images/train/00000.png").read_bytes() != (c / "images/train/00000.png").read_bytes()


def test_splits_are_independent_streams(tmp_path):
    train = scene_sample(0, "train", 0, 32)
    val = scene_sample(0, "val", 0, 32)
    assert not np.array_equal(train.image, val.image)
    # An image does not depend on how many images the other split has.
    few = write_detection_dataset(tmp_path / "few", num_train=2, num_val=1, image_size=32, seed=0)
    many = write_detection_dataset(tmp_path / "many", num_train=2, num_val=3, image_size=32, seed=0)
    for name in ("00000.png", "00001.png"):
        assert (few / "images/train" / name).read_bytes() == (many / "images/train" / name).read_bytes()


def test_detection_writer_coco(tmp_path):
    from pycocotools.coco import COCO

    root = write_detection_dataset(tmp_path / "det", num_train=12, num_val=4, image_size=40, max_shapes=3, seed=3)
    for split, count in (("train", 12), ("val", 4)):
        coco = COCO(str(root / "annotations" / f"instances_{split}.json"))
        assert sorted(coco.getImgIds()) == list(range(1, count + 1))
        assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == [
            (i + 1, name) for i, name in enumerate(SHAPE_CLASSES)
        ]
        empty = 0
        for image_id in coco.getImgIds():
            info = coco.loadImgs(image_id)[0]
            path = root / "images" / split / info["file_name"]
            with Image.open(path) as im:
                assert im.size == (info["width"], info["height"]) == (40, 40)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            sample = scene_sample(3, split, image_id - 1, 40, 3)
            assert len(anns) == len(sample.class_ids)
            empty += not anns
            for k, ann in enumerate(anns, start=1):
                assert ann["iscrowd"] == 0 and "segmentation" not in ann
                assert ann["category_id"] == sample.class_ids[k - 1] + 1
                ys, xs = np.nonzero(sample.instance_mask == k)
                x, y, w, h = ann["bbox"]
                assert [x, y, x + w, y + h] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                assert ann["area"] == xs.size
        if count >= 4:
            assert empty >= 1, "detection data must contain empty images"
    assert COCO(str(root / "annotations" / "instances_train.json")).anns, "no shapes at all"


def test_segmentation_writer(tmp_path):
    root = write_segmentation_dataset(tmp_path / "seg", num_train=5, num_val=2, image_size=(24, 32), seed=4)
    assert yaml.safe_load((root / "classes.yaml").read_text()) == ["background", *SHAPE_CLASSES]
    seen = set()
    for split, count in (("train", 5), ("val", 2)):
        images = sorted((root / split / "images").iterdir())
        masks = sorted((root / split / "masks").iterdir())
        assert [p.name for p in images] == [p.name for p in masks] == [f"{i:05d}.png" for i in range(count)]
        for index, (image_path, mask_path) in enumerate(zip(images, masks)):
            with Image.open(image_path) as im, Image.open(mask_path) as mk:
                assert mk.mode == "L" and im.mode == "RGB"
                assert im.size == mk.size == (32, 24)
                mask = np.asarray(mk)
            assert mask.max() <= len(SHAPE_CLASSES)
            np.testing.assert_array_equal(mask, scene_sample(4, split, index, (24, 32)).semantic_mask)
            seen |= set(np.unique(mask).tolist())
    assert 0 in seen and len(seen) > 1


def test_idempotent_and_rewrites_on_new_arguments(tmp_path):
    root = tmp_path / "cls"
    write_classification_dataset(root, train_per_class=3, val_per_class=1, image_size=16, seed=0)
    before = _mtimes(root)
    write_classification_dataset(root, train_per_class=3, val_per_class=1, image_size=16, seed=0)
    assert _mtimes(root) == before

    write_classification_dataset(root, train_per_class=2, val_per_class=1, image_size=16, seed=1)
    assert not (root / "train" / "circle" / "circle_0002.png").exists(), "stale files from the old dataset"
    assert len(list((root / "train" / "circle").iterdir())) == 2
    assert json.loads((root / MANIFEST_NAME).read_text())["args"]["seed"] == 1
    np.testing.assert_array_equal(
        np.asarray(Image.open(root / "val" / "square" / "square_0000.png")),
        classification_sample(1, "val", 1, 0, 16).image,
    )

    # Another task in the same root replaces the old dataset cleanly.
    write_segmentation_dataset(root, num_train=2, num_val=1, image_size=16)
    assert not (root / "train" / "circle").exists()
    assert sorted(p.name for p in root.iterdir()) == sorted(["train", "val", "classes.yaml", MANIFEST_NAME])


def test_crash_midway_leaves_no_manifest_and_recovers(tmp_path, monkeypatch):
    root = tmp_path / "det"
    calls = {"n": 0}
    real = writers.save_png

    def flaky(path, array):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        real(path, array)

    monkeypatch.setattr(writers, "save_png", flaky)
    with pytest.raises(RuntimeError):
        write_detection_dataset(root, num_train=4, num_val=1, image_size=16)
    assert not (root / MANIFEST_NAME).exists()
    monkeypatch.setattr(writers, "save_png", real)
    write_detection_dataset(root, num_train=4, num_val=1, image_size=16)
    assert (root / MANIFEST_NAME).is_file()
    assert len(list((root / "images" / "train").iterdir())) == 4


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        write_classification_dataset(tmp_path, train_per_class=1, val_per_class=1, image_size=16)
    assert (tmp_path / "train" / "mine.txt").read_text() == "user data"


def test_cli_writes_dataset(tmp_path, capsys):
    main(["segmentation", str(tmp_path / "seg"), "--seed", "2", "--image-size", "16"])
    manifest = json.loads((tmp_path / "seg" / MANIFEST_NAME).read_text())
    assert manifest["task"] == "segmentation"
    assert manifest["args"]["seed"] == 2 and manifest["args"]["image_size"] == 16
    assert len(list((tmp_path / "seg" / "train" / "images").iterdir())) == 48
    assert str(tmp_path / "seg") in capsys.readouterr().out
