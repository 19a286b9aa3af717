"""Shared fixtures: real assets, tiny synthetic data, quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from support import assets_root


@pytest.fixture(scope="session")
def assets() -> Path:
    """The real assets folder; missing assets fail under CI and skip elsewhere."""
    root = assets_root()
    if not (root / "README.md").is_file():
        message = f"real assets not found at {root} (set KERASCV_TL_ASSETS)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def mobilenet_v2_weights(assets: Path) -> Path:
    path = assets / "weights" / "mobilenet_v2_imagenet" / "mobilenet_v2_torchvision_ported_keras_notop.weights.h5"
    if not path.is_file():
        pytest.fail(f"{path} is missing from the assets folder")
    return path


@pytest.fixture(scope="session")
def flowers5(assets: Path) -> Path:
    path = assets / "flowers5"
    if not (path / "train").is_dir():
        pytest.fail(f"{path}/train is missing from the assets folder")
    return path


@pytest.fixture(scope="session")
def shapes_classification(tmp_path_factory) -> Path:
    """Tiny synthetic 3-class dataset: root/train/<class>/*.png and root/val/<class>/*.png, 32 px."""
    from kerascv_tl.data.synthetic import write_classification_dataset

    return write_classification_dataset(
        tmp_path_factory.mktemp("shapes"), train_per_class=8, val_per_class=4, image_size=32, seed=0
    )


def pytest_collection_modifyitems(config, items):
    """Test files with slow tests run first, longest first (the `seconds=` of their `slow` marks).

    `make test` hands whole files to two pytest-xdist workers in collection order; starting the long files
    first keeps one worker from finishing a 3-minute file alone at the end.
    """
    weight: dict[str, float] = {}
    for item in items:
        mark = item.get_closest_marker("slow")
        if mark is not None:
            weight[item.module.__name__] = weight.get(item.module.__name__, 0.0) + mark.kwargs.get("seconds", 30)
    order = {item.module.__name__: index for index, item in reversed(list(enumerate(items)))}
    items.sort(key=lambda item: (-weight.get(item.module.__name__, 0.0), order[item.module.__name__]))
