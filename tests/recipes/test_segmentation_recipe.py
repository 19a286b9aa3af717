import json

import numpy as np
import pytest
from PIL import Image

from kerascv_tl.cli import main
from kerascv_tl.config import load_config
from kerascv_tl.recipes import train

SIZE = 48


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory):
    from kerascv_tl.data.synthetic import write_segmentation_dataset

    root = write_segmentation_dataset(
        tmp_path_factory.mktemp("shapes_seg"), num_train=16, num_val=6, image_size=SIZE, seed=0
    )
    config = load_config(
        None,
        [
            "task=segmentation",
            "recipe=fine_tune",
            "data.format=masks",
            f"data.image_size={SIZE}",
            f"data.train={dirty_masks(root)}",
            f"data.val={root}/val",
            f"data.classes={root}/classes.yaml",
            "backbone.weights=none",
            "train.batch_size=8",
            "train.head_epochs=1",
            "train.epochs=1",
            "train.monitor=val_mean_iou",
            "train.early_stopping_patience=0",
            "export.probabilities=true",
        ],
    )
    run, metrics = train(config, output=tmp_path_factory.mktemp("runs") / "seg", verbose=0)
    return run, metrics, root


def dirty_masks(root):
    """A copy of the training pairs plus a truncated image, a mask of the wrong size and one with an unknown id."""
    import shutil

    import bad_files

    dirty = root / "train_dirty"
    shutil.copytree(root / "train", dirty)
    image, mask = (
        np.asarray(Image.open(dirty / "images" / "00000.png")),
        np.asarray(Image.open(dirty / "masks" / "00000.png")),
    )
    bad_files.truncated(dirty / "images" / "broken.png", "png")
    Image.fromarray(mask).save(dirty / "masks" / "broken.png")
    Image.fromarray(image).save(dirty / "images" / "small.png")
    Image.fromarray(mask[: SIZE // 2]).save(dirty / "masks" / "small.png")
    Image.fromarray(image).save(dirty / "images" / "unknown.png")
    Image.fromarray(np.where(mask > 0, 9, 0).astype(np.uint8)).save(dirty / "masks" / "unknown.png")
    return dirty


@pytest.mark.slow(seconds=50)
def test_segmentation_run_writes_miou_overlays_and_card(segmentation_run):
    run, metrics, _ = segmentation_run
    for key in ("miou", "per_class_iou", "pixel_accuracy", "fw_iou"):
        assert key in metrics
    assert set(metrics["per_class_iou"]) == {"background", "circle", "square", "triangle"}
    assert metrics["num_images"] == 6 and 0.0 <= metrics["miou"] <= 1.0
    matrix = np.asarray(json.loads((run.root / "confusion_matrix.json").read_text())["matrix"])
    assert matrix.sum() == metrics["num_pixels"] == 6 * SIZE * SIZE  # original resolution, nothing ignored
    assert metrics["pixel_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    names = {p.name for p in run.root.iterdir()}
    assert {
        "model.keras",
        "metrics.json",
        "model_card.json",
        "segmentations.png",
        "training_curves.png",
        "history_head.csv",
        "history_fine_tune.csv",
    } <= names
    card = json.loads((run.root / "model_card.json").read_text())
    assert card["task"] == "segmentation" and "stretch" in card["input"]["resize"]
    assert card["metrics"]["miou"] == metrics["miou"]
    assert "val_mean_iou" in (run.root / "history_head.csv").read_text().splitlines()[0]


@pytest.mark.slow(seconds=25)
def test_cli_exports_predicts_an_overlay_and_evaluates(segmentation_run, tmp_path, capsys):
    run, metrics, root = segmentation_run
    assert main(["export", str(run.root), "--output", str(tmp_path / "seg")]) == 0
    card = json.loads((tmp_path / "seg" / "1" / "model_card.json").read_text())
    assert card["export"]["include_probabilities"] is True
    image = sorted((root / "val" / "images").glob("*.png"))[0]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "seg"), str(image), "--json", "--output-dir", str(tmp_path / "out")]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["overlay"] == str(tmp_path / "out" / f"{image.stem}_segmentation.png") and line["size"] == [SIZE, SIZE]
    assert sum(line["class_fractions"].values()) == pytest.approx(1.0, abs=1e-3)
    with Image.open(line["overlay"]) as overlay:
        assert overlay.size == (SIZE, SIZE)
    assert main(["evaluate", str(run.root), "--data", str(root / "val"), "--output", str(tmp_path / "eval")]) == 0
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["miou"] == pytest.approx(metrics["miou"]) and again["num_images"] == 6


def test_bad_training_pairs_were_named_and_the_run_trained_on_the_rest(segmentation_run):
    run, _, root = segmentation_run
    report = json.loads((run.root / "data_check.json").read_text())
    by_file = {p["path"].rsplit("/", 2)[-2] + "/" + p["path"].rsplit("/", 1)[-1]: p for p in report["problems"]}
    assert "truncated or corrupt image data" in by_file["images/broken.png"]["message"], by_file
    assert f"is {SIZE}x{SIZE // 2} but image" in by_file["masks/small.png"]["message"], by_file
    unknown = by_file["masks/unknown.png"]
    assert "mask values [9] are not among the 4 classes' ids" in unknown["message"], by_file
    assert unknown["action"] == "pixels ignored"
    # The 16 good pairs and the one whose unknown pixels are ignored trained; the other two were left out.
    assert report["on_bad"] == "skip" and report["num_train"] == 17
    assert run.is_finished() and len((run.root / "history_fine_tune.csv").read_text().splitlines()) == 2
