import json
import subprocess
import sys

import pytest
from support import RECIPE_DIR

from kerascv_tl.cli import main
from kerascv_tl.config import load_config
from kerascv_tl.recipes import train


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory):
    from kerascv_tl.data.synthetic import write_detection_dataset

    root = write_detection_dataset(
        tmp_path_factory.mktemp("shapes_det"), num_train=16, num_val=8, image_size=64, seed=0
    )
    dirty = dirty_coco(root)
    config = load_config(
        None,
        [
            "task=detection",
            "recipe=fine_tune",
            "data.format=coco",
            "data.image_size=64",
            f"data.train={dirty}",
            f"data.val={root}/annotations/instances_val.json",
            f"data.image_root={root}/images/train",
            f"data.val_image_root={root}/images/val",
            "backbone.weights=none",
            "train.batch_size=8",
            "train.head_epochs=1",
            "train.epochs=1",
            "train.monitor=val_loss",
            "train.early_stopping_patience=0",
            "export.score_threshold=0.0",
            "export.max_detections=10",
        ],
    )
    run_dir = tmp_path_factory.mktemp("runs") / "det"
    run, metrics = train(config, output=run_dir, verbose=0)
    return run, metrics, root


def dirty_coco(root):
    """The training JSON plus a truncated image, a missing one and a box with no area (`on_bad: skip` default)."""
    import bad_files

    data = json.loads((root / "annotations" / "instances_train.json").read_text())
    bad_files.truncated(root / "images" / "train" / "broken.png", "png")
    next_id = max(image["id"] for image in data["images"]) + 1
    for offset, name in enumerate(("broken.png", "gone.png")):
        data["images"].append({"id": next_id + offset, "file_name": name, "width": 64, "height": 64})
        data["annotations"].append(
            {
                "id": 10_000 + offset,
                "image_id": next_id + offset,
                "category_id": data["categories"][0]["id"],
                "bbox": [4, 4, 20, 20],
                "area": 400,
                "iscrowd": 0,
            }
        )
    flat = dict(data["annotations"][0], id=10_002, bbox=[10, 10, 0, 12], area=0)  # zero width
    data["annotations"].append(flat)
    path = root / "annotations" / "instances_train_dirty.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.slow(seconds=75)
def test_detection_run_writes_coco_metrics_overlays_and_card(detection_run):
    run, metrics, _ = detection_run
    for key in ("map_50_95", "map_50", "map_75", "ar_100", "per_class"):
        assert key in metrics
    assert set(metrics["per_class"]) == {"circle", "square", "triangle"} and metrics["num_images"] == 8
    # the model's own anchors and heads, and the loss it trained with
    assert metrics["anchor_aspect_ratios"] == [0.5, 1.0, 2.0] and metrics["group_norm"] is True
    assert metrics["box_loss"] == "smooth_l1"
    names = {p.name for p in run.root.iterdir()}
    assert {
        "model.keras",
        "metrics.json",
        "model_card.json",
        "detections.png",
        "training_curves.png",
        "history_head.csv",
        "history_fine_tune.csv",
    } <= names
    card = json.loads((run.root / "model_card.json").read_text())
    assert card["task"] == "detection" and "letterbox" in card["input"]["resize"]


def test_bad_training_files_and_boxes_were_named_and_the_run_trained_on_the_rest(detection_run):
    run, _, root = detection_run
    report = json.loads((run.root / "data_check.json").read_text())
    messages = [p["message"] for p in report["problems"]]
    images = root / "images" / "train"
    assert any(m.startswith(f"{images / 'broken.png'}: truncated or corrupt image data") for m in messages), messages
    assert any(m.startswith(f"{images / 'gone.png'}: image file not found") for m in messages), messages
    assert any("has no area inside the 64x64 image" in m for m in messages), messages
    assert report["on_bad"] == "skip" and report["num_train"] == 16  # both bad images left out, the rest kept
    assert run.is_finished() and len((run.root / "history_fine_tune.csv").read_text().splitlines()) == 2


@pytest.mark.slow(seconds=65)
def test_cli_exports_and_draws_detections(detection_run, tmp_path, capsys):
    run, _, root = detection_run
    assert main(["export", str(run.root), "--output", str(tmp_path / "det")]) == 0
    image = sorted((root / "images" / "val").glob("*.png"))[0]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "det"), str(image), "--json", "--output-dir", str(tmp_path / "out")]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert len(line["detections"]) <= 10 and line["annotated"] == str(tmp_path / "out" / f"{image.stem}_detections.png")
    from PIL import Image

    with Image.open(line["annotated"]) as annotated, Image.open(image) as original:
        assert annotated.size == original.size  # drawn on a copy at the original resolution
    for detection in line["detections"]:
        x0, y0, x1, y1 = detection["box_xyxy"]
        assert 0 <= x0 <= x1 <= 64 and 0 <= y0 <= y1 <= 64 and detection["class"] in {"circle", "square", "triangle"}
    assert (
        main(
            [
                "evaluate",
                str(run.root),
                "--data",
                str(root / "annotations" / "instances_train.json"),
                "--output",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )  # image_root of the run: the training images
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["num_images"] == 16


@pytest.mark.slow(seconds=70)
def test_keras_hub_resnet_preset_folder_trains_and_exports_through_the_cli(detection_run, tmp_path, capsys):
    # The KerasHub path a user with a downloaded preset takes: the backbone is a local preset folder (a
    # narrow ResNet here, to keep the test fast; hub_resnet18 with weights=FOLDER goes through
    # tests/backbones/test_weights.py).
    import keras_hub

    _, _, root = detection_run
    preset = tmp_path / "resnet_preset"
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 16, 16, 16],  # KerasHub wants 64 first; narrow after it, for speed
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
    ).save_to_preset(str(preset))
    run_dir = tmp_path / "run"
    overrides = [
        "data.image_size=64",
        f"backbone.name={preset}",
        f"data.train={root}/annotations/instances_train.json",
        f"data.val={root}/annotations/instances_val.json",
        f"data.image_root={root}/images/train",
        f"data.val_image_root={root}/images/val",
        "train.batch_size=8",
        "recipe=feature_extraction",  # one phase: the preset folder's path is what is tested here
        "train.epochs=1",
        "train.early_stopping_patience=0",
        "export.score_threshold=0.0",
        "export.max_detections=5",
    ]
    args = ["train", str(RECIPE_DIR / "shapes_detection.yaml"), "--output", str(run_dir)]
    assert main(args + [item for value in overrides for item in ("--set", value)]) == 0
    card = json.loads((run_dir / "model_card.json").read_text())
    # The card names a local preset folder by its name only (no local paths in cards: kerascv_tl/export/card.py).
    assert card["backbone"]["name"] == preset.name
    assert card["backbone"]["weights_source"] == {"kind": "preset", "handle": preset.name, "class": "ResNetBackbone"}
    assert main(["export", str(run_dir), "--output", str(tmp_path / "served")]) == 0
    image = sorted((root / "images" / "val").glob("*.png"))[0]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "served"), str(image), "--json", "--output-dir", str(tmp_path / "out")]) == 0
    assert len(json.loads(capsys.readouterr().out.strip())["detections"]) == 5
    assert (tmp_path / "out" / f"{image.stem}_detections.png").exists()


@pytest.mark.slow(seconds=25)
def test_preset_export_reloads_equal_and_starts_a_run_where_the_first_ended(detection_run, tmp_path, capsys):
    import keras_hub
    import numpy as np

    run, metrics, root = detection_run
    folder = tmp_path / "det_preset"
    capsys.readouterr()
    assert main(["export", str(run.root), "--format", "preset", "--output", str(tmp_path / "det"), "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"exported KerasHub preset: {folder}" in out
    difference = float(out.split("max output difference ")[1].split()[0])
    assert difference <= 1e-5, out
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["class_names"] == run.load_class_names() and meta["kerascv_tl"]["task"] == "detection"
    assert "from_preset" in (folder / "README.md").read_text()

    reloaded = keras_hub.models.ObjectDetector.from_preset(str(folder))
    assert type(reloaded).__name__ == "RetinaNetDetector"
    snippet = (
        f"import keras_hub, kerascv_tl.tasks; print(type(keras_hub.models.ObjectDetector.from_preset({str(folder)!r})))"
    )
    fresh = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120)
    assert "RetinaNetDetector" in fresh.stdout, fresh.stderr[-2000:]  # the documented snippet, in a new process
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    expected, got = run.load_model().predict(pixels, verbose=0), reloaded.predict(pixels, verbose=0)
    for key in ("boxes", "confidence", "labels", "num_detections"):
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5)

    # Same classes, same validation data: before any training step the preset start scores what the run scored.
    config = load_config(
        None,
        [
            "task=detection",
            "recipe=feature_extraction",
            "data.format=coco",
            "data.image_size=64",
            f"data.train={root}/annotations/instances_train.json",
            f"data.val={root}/annotations/instances_val.json",
            f"data.image_root={root}/images/train",
            f"data.val_image_root={root}/images/val",
            f"model.preset={folder}",
            "train.batch_size=8",
            "train.epochs=1",
            "train.early_stopping_patience=0",
        ],
    )
    second, second_metrics = train(config, output=tmp_path / "second", verbose=0)
    epoch_0 = json.loads((second.root / "epoch_0" / "metrics.json").read_text())
    assert epoch_0["map_50_95"] == pytest.approx(metrics["map_50_95"], abs=1e-6)
    start = second_metrics["start"]
    assert start["epoch_0"]["map_50"] == epoch_0["map_50"] and start["fresh_classes"] == []
    assert second_metrics["anchor_aspect_ratios"] == metrics["anchor_aspect_ratios"]  # the preset's, read back
    assert start["matched_classes"] == {name: name for name in run.load_class_names()}
    card = json.loads((second.root / "model_card.json").read_text())
    assert card["backbone"]["weights_source"]["kind"] == "task_preset"
