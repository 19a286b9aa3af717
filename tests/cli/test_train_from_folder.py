"""`kerascv-tl train --data DIR`: the folder's layout picks the task and the reader; no YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kerascv_tl.cli import main
from kerascv_tl.data.synthetic import write_detection_dataset, write_segmentation_dataset

TINY = ["--weights", "none", "--epochs", "1", "--batch-size", "8", "--set", "train.head_epochs=1"]
TINY += ["--set", "train.early_stopping_patience=0"]


def _train(data: Path, run_dir: Path, *extra: str) -> dict:
    assert main(["train", "--data", str(data), "--output", str(run_dir), *TINY, *extra]) == 0
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def _coco_to_voc(coco_root: Path, split: str, voc_root: Path) -> Path:
    """The synthetic COCO split rewritten as Pascal VOC: Annotations/*.xml + JPEGImages/."""
    coco = json.loads((coco_root / "annotations" / f"instances_{split}.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    (voc_root / "Annotations").mkdir(parents=True)
    (voc_root / "JPEGImages").mkdir()
    for image in coco["images"]:
        source = coco_root / "images" / split / image["file_name"]
        (voc_root / "JPEGImages" / image["file_name"]).write_bytes(source.read_bytes())
        objects = "".join(
            f"<object><name>{names[a['category_id']]}</name><bndbox><xmin>{a['bbox'][0]}</xmin>"
            f"<ymin>{a['bbox'][1]}</ymin><xmax>{a['bbox'][0] + a['bbox'][2]}</xmax>"
            f"<ymax>{a['bbox'][1] + a['bbox'][3]}</ymax></bndbox></object>"
            for a in coco["annotations"]
            if a["image_id"] == image["id"]
        )
        (voc_root / "Annotations" / f"{Path(image['file_name']).stem}.xml").write_text(
            f"<annotation><filename>{image['file_name']}</filename><size><width>{image['width']}</width>"
            f"<height>{image['height']}</height><depth>3</depth></size>{objects}</annotation>"
        )
    return voc_root


def test_class_folders_in_train_and_val_train_a_classifier(shapes_classification, tmp_path, capsys):
    config = _train(shapes_classification, tmp_path / "run", "--image-size", "32", "--recipe", "feature_extraction")
    assert config["task"] == "classification" and config["recipe"] == "feature_extraction"
    assert config["data"]["train"] == str(shapes_classification / "train")
    assert config["data"]["val"] == str(shapes_classification / "val")
    assert config["data"]["image_size"] == 32 and config["backbone"]["weights"] == "none"
    out = capsys.readouterr().out
    assert "data: class folders (3 classes: circle, square, triangle); validation: val/ -> classification" in out
    classes = json.loads((tmp_path / "run" / "class_names.json").read_text())
    assert classes == ["circle", "square", "triangle"]  # never "train" and "val"


@pytest.mark.slow
def test_images_and_masks_folder_trains_a_segmenter(tmp_path):
    root = write_segmentation_dataset(tmp_path / "seg", num_train=8, num_val=4, image_size=64)
    config = _train(root / "train", tmp_path / "run", "--image-size", "64", "--recipe", "feature_extraction")
    assert (config["task"], config["data"]["format"], config["data"]["val"]) == ("segmentation", "masks", None)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0


@pytest.mark.slow
def test_voc_folder_trains_a_detector(tmp_path):
    coco = write_detection_dataset(tmp_path / "coco", num_train=8, num_val=2, image_size=64)
    voc = _coco_to_voc(coco, "train", tmp_path / "voc")
    config = _train(voc, tmp_path / "run", "--image-size", "64", "--recipe", "feature_extraction")
    assert (config["task"], config["data"]["format"], config["data"]["train"]) == ("detection", "voc", str(voc))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "map_50" in metrics


def test_ambiguous_folder_and_wrong_recipe_are_one_line_errors(tmp_path, shapes_classification, capsys):
    both = tmp_path / "both"
    for folder in ("images", "masks", "Annotations"):
        (both / folder).mkdir(parents=True)
    (both / "Annotations" / "a.xml").write_text("<annotation/>")
    assert main(["train", "--data", str(both), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "more than one layout fits" in err and len(err.splitlines()) == 1
    assert main(["train", "shapes_detection", "--data", str(shapes_classification)]) == 2
    assert "is a detection recipe, but" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert "or --data DIR" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_detection_image_size_too_small_for_the_pyramid_is_a_config_error(tmp_path, capsys):
    coco = write_detection_dataset(tmp_path / "coco", num_train=4, num_val=2, image_size=48)
    code = main(["train", "--data", str(coco), "--output", str(tmp_path / "run"), *TINY, "--image-size", "48"])
    assert code == 2
    assert "data.image_size 48 is too small for a feature pyramid" in capsys.readouterr().err
