"""Model cards: no absolute local path in model_card.json (run and export), the run's config.yaml keeps the real
paths, and the Markdown card beside every model_card.json."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest
import tensorflow as tf
import yaml

from kerascv_tl.config import load_config
from kerascv_tl.export.card import CONFIG_PATH_FIELDS, model_card, portable_card, portable_path
from kerascv_tl.export.card_markdown import render_model_card
from kerascv_tl.export.serving import serving_archive, write_versioned
from kerascv_tl.run_folder import RunFolder

CLASSES = ["daisy", "roses", "tulips"]
TORCHVISION_NOTOP_SHA256 = "0dff49c0b87c77b92b32be64546d42fbccba119a90075c9178b169e790520649"
ABSOLUTE = re.compile(r"(?<![\w.~:/-])/[^\s/\"']")  # "/" starting a word: an absolute POSIX path
HEADINGS = [
    "## Intended use",
    "## Data",
    "## Metrics",
    "## How to use",
    "## Limitations",
    "## Weights' origin and licence",
    "## Software versions",
]


def local_config(root: Path):
    """A classification config whose every path field is an absolute path under `root` (set directly: the
    reader-specific ones would not validate for classification, and a card must cope with any config)."""
    config = load_config(None, [])
    config.data.train = f"{root}/data/flowers5/train"
    config.data.val = f"{root}/data/flowers5/val"
    config.data.root = f"{root}/data/flowers5"
    config.data.classes = f"{root}/data/flowers5/classes.txt"
    config.data.image_root = f"{root}/data/coco/images/train2017"
    config.data.val_image_root = f"{root}/data/coco/images/val2017"
    config.data.tfds_data_dir = f"{root}/tensorflow_datasets"
    config.backbone.weights = f"{root}/weights/mobilenet_v2_notop.weights.h5"
    config.train.feature_cache_dir = f"{root}/cache/features"
    config.output_dir = f"{root}/runs"
    config.export.dir = f"{root}/saved_models"
    config.export.name = "flowers"
    return config


def backbone_info(root: Path) -> dict:
    return {
        "name": "mobilenet_v2",
        "pooling": "avg",
        "preprocessing": {"scale": 0.00392, "mean": [0.485, 0.456, 0.406], "source": f"sidecar {root}/weights/p.json"},
        "weights_source": {
            "kind": "file",
            "path": f"{root}/weights/mobilenet_v2_notop.weights.h5",
            "sha256": TORCHVISION_NOTOP_SHA256,
        },
    }


def card_of(root: Path, **extra) -> dict:
    resize = "shorter side to ceil(224 / 0.875), centre crop 224x224, bilinear antialiased"
    metrics = {"accuracy": 0.912, "num_examples": 200}
    counts = {"train_images": 500, "val_images": 200}
    return model_card(local_config(root), CLASSES, backbone_info(root), resize, metrics, f"{root}/runs/flowers", counts)


def assert_portable(card: dict, root: Path) -> None:
    text = json.dumps(card)
    assert str(root) not in text and os.path.expanduser("~") + "/" not in text
    assert not ABSOLUTE.search(text), ABSOLUTE.search(text)


def test_portable_path():
    assert portable_path("/srv/data/flowers5/train", 2) == "flowers5/train"
    assert portable_path("/srv/data/flowers5/train") == "train"
    assert portable_path("/srv/w/mobilenet.weights.h5") == "mobilenet.weights.h5"
    assert portable_path(os.path.expanduser("~/flowers5"), 2) == "flowers5"  # never the user's name
    assert portable_path("~/flowers5/train", 2) == "flowers5/train"
    assert portable_path("../x/flowers5/train/", 2) == "flowers5/train"
    for unchanged in (None, "", "imagenet", "none", "mobilenet_v2", "runs", "a,b,c", 3):
        assert portable_path(unchanged, 2) == unchanged
    for handle in ("tfds:oxford_flowers102", "kaggle://keras/resnetv2/keras/resnet50_v2_imagenet/2", "gs://b/x"):
        assert portable_path(handle) == handle
    assert portable_path(portable_path("/srv/data/flowers5/train", 2), 2) == "flowers5/train"


def test_model_card_has_no_local_paths(tmp_path):
    card = card_of(tmp_path)
    assert_portable(card, tmp_path)
    assert card["data"] == {"train": "flowers5/train", "val": "flowers5/val", "train_images": 500, "val_images": 200}
    assert card["run_dir"] == "flowers"
    config = card["config"]
    assert (config["data"]["train"], config["data"]["classes"]) == ("flowers5/train", "flowers5/classes.txt")
    assert (config["data"]["root"], config["data"]["image_root"]) == ("flowers5", "images/train2017")
    assert config["backbone"]["weights"] == "mobilenet_v2_notop.weights.h5"
    assert (config["output_dir"], config["export"]["dir"], config["train"]["feature_cache_dir"]) == (
        "runs",
        "saved_models",
        "features",
    )
    source = card["backbone"]["weights_source"]
    assert source == {"kind": "file", "path": "mobilenet_v2_notop.weights.h5", "sha256": TORCHVISION_NOTOP_SHA256}
    assert card["preprocessing"]["source"] == "sidecar p.json"
    assert card["labels"] == CLASSES and card["metrics"]["accuracy"] == 0.912
    assert portable_card(card) == card  # idempotent: the export applies it again


def test_no_string_field_of_the_config_brings_a_local_path(tmp_path):
    # Every free string of the config set to an absolute path: the table, or the scrub behind it, catches each
    # one, so a path field added to the config later cannot leak either.
    config = local_config(tmp_path)
    sections = [config, config.data, config.backbone, config.model, config.head, config.train, config.export]
    for section in sections:
        for f in dataclasses.fields(section):
            if "str" in str(f.type) and "choices" not in f.metadata:
                setattr(section, f.name, f"{tmp_path}/somewhere/{f.name}")
    card = model_card(config, CLASSES, backbone_info(tmp_path), "stretch to 32x32", {}, str(tmp_path))
    assert_portable(card, tmp_path)
    assert {key.rpartition(".")[2] for key in CONFIG_PATH_FIELDS} <= {
        f.name for section in sections for f in dataclasses.fields(section)
    }


def test_run_folder_keeps_real_paths_in_config_yaml(tmp_path):
    config = local_config(tmp_path)
    config.data.classes = config.data.image_root = config.data.val_image_root = None  # not classification's
    run = RunFolder(tmp_path / "runs" / "flowers")
    run.prepare(config)
    run.write_model_card(card_of(tmp_path))
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["train"] == f"{tmp_path}/data/flowers5/train"
    assert run.load_config().backbone.weights == f"{tmp_path}/weights/mobilenet_v2_notop.weights.h5"
    card = json.loads((run / "model_card.json").read_text())
    assert_portable(card, tmp_path)
    page = (run / "model_card.md").read_text()
    assert page == render_model_card(card) and str(tmp_path) not in page
    assert "kerascv-tl export path/to/flowers" in page


def test_markdown_card_sections(tmp_path):
    card = card_of(tmp_path)
    card["export"] = {
        "version": 3,
        "signatures": {"serving_default": {"outputs": ["probabilities", "scores", "class_ids", "class_names"]}},
    }
    page = render_model_card(card)
    positions = [page.index(heading) for heading in HEADINGS]
    assert positions == sorted(positions) and page.startswith("# flowers\n")
    assert "`daisy`, `roses`, `tulips`" in page and "centre crop 224x224" in page
    assert "- **Training:** `flowers5/train` (500 images)" in page
    assert "| accuracy | 0.9120 |" in page and "| num_examples | 200 |" in page
    assert "http://localhost:8501/v1/models/flowers:predict" in page and '\\"b64\\"' in page
    assert "kerascv-tl predict path/to/flowers" in page and 'kerascv_tl.load_predictor("path/to/flowers")' in page
    assert "Trained on 500 images of these 3 classes" in page and "centre crop drops" in page
    assert "torchvision's MobileNetV2" in page and "BSD-3-Clause" in page
    assert "`probabilities`, `scores`" in page and f"| tensorflow | {tf.__version__} |" in page


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"kind": "file", "path": "mine.weights.h5", "sha256": "ab"}, "unknown (not recorded with the file)"),
        ({"kind": "none"}, "random initialisation"),
        ({"kind": "imagenet", "loader": "keras.applications (resnet50)"}, "Keras Applications"),
        ({"kind": "preset", "handle": "resnet_50_imagenet", "class": "ResNetBackbone"}, "unknown here"),
        (None, "not recorded"),
    ],
)
def test_markdown_weights_origin(source, expected):
    page = render_model_card({"name": "m", "backbone": {"name": "x", "weights_source": source}})
    section = page.split("## Weights' origin and licence")[1].split("##")[0]
    assert expected in section


def test_markdown_of_sparse_cards():
    for card in ({}, {"name": "shapes"}, {"name": "m", "task": "detection", "metrics": {"per_class_iou": {"a": None}}}):
        page = render_model_card(card)
        assert all(heading in page for heading in HEADINGS)
    assert "| per_class_iou: a | n/a |" in page


def test_export_writes_a_portable_card_and_its_readme(tmp_path):
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Identity()])
    spec = tf.TensorSpec([4, 4, 3], tf.float32)
    archive = serving_archive(model, lambda image: tf.image.resize(image, (4, 4)), spec, lambda x: {"x": model(x)})
    # A card built elsewhere (an older run's, a caller's own) is made portable on the way out too.
    card = {"name": "m", "run_dir": f"{tmp_path}/runs/m", "config": {"data": {"train": f"{tmp_path}/d/s/train"}}}
    folder = write_versioned(archive, tmp_path / "m", None, card, ["a"], ["x"], {"image_size": 4})
    written = json.loads((folder / "model_card.json").read_text())
    assert_portable(written, tmp_path)
    assert written["run_dir"] == "m" and written["config"]["data"]["train"] == "s/train"
    assert written["export"]["version"] == 1 and written["export"]["base_folder"] == "m" and written["labels"] == ["a"]
    assert "kerascv-tl predict path/to/m photo.jpg" in (folder / "README.md").read_text()
    assert (folder / "README.md").read_text() == render_model_card(written)
    assert card["run_dir"] == f"{tmp_path}/runs/m"  # the caller's dict is left as it was


def test_markdown_rendering_imports_no_tensorflow():
    path = Path(importlib.util.find_spec("kerascv_tl").origin).parent / "export" / "card_markdown.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('card_markdown', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "module.render_model_card({'name': 'x'})\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
