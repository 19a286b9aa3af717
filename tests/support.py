"""Helpers shared by the tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from kerascv_tl.recipe_catalog import RECIPE_DIR as RECIPE_DIR  # the packaged recipes, for the tests

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def assets_root() -> Path:
    return Path(os.environ.get("KERASCV_TL_ASSETS", PROJECT_ROOT.parent / "shared" / "assets")).resolve()


def tiny_overrides(shapes: Path, **extra) -> list[str]:
    """Overrides for a fast CPU run on the tiny shapes dataset with a random-init MobileNetV2."""
    values = {
        "data.train": f"{shapes}/train",
        "data.val": f"{shapes}/val",
        "data.image_size": 32,
        "backbone.name": "mobilenet_v2",
        "backbone.weights": "none",
        "train.batch_size": 8,
        "train.epochs": 1,
        "train.head_epochs": 1,
        "train.early_stopping_patience": 0,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] > 0 and image.size[1] > 0
        image.load()  # decodes the whole file: a truncated PNG fails here


def folder_holds_only(folder, *names):
    # No ".name.xxxx.tmp.png" left behind by the atomic write.
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def capture_saved_figures(monkeypatch, module) -> list:
    """Patches `module.save_figure` to record every matplotlib Figure it writes, so tests can inspect them."""
    captured = []
    original = module.save_figure

    def save(figure, path):
        captured.append(figure)
        return original(figure, path)

    monkeypatch.setattr(module, "save_figure", save)
    return captured
