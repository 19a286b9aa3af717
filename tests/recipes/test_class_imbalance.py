"""A whole run with class weights and balanced sampling, through cached embeddings and fine-tuning."""

from __future__ import annotations

import json
import shutil

import pytest
from support import tiny_overrides

from kerascv_tl.config import load_config
from kerascv_tl.recipes import train


@pytest.mark.slow(seconds=60)
def test_an_imbalanced_run_trains_with_weights_and_balanced_sampling_and_reports_balanced_accuracy(
    shapes_classification, tmp_path
):
    data = tmp_path / "data"
    shutil.copytree(shapes_classification, data)
    first = sorted((data / "train").iterdir())[0]
    for image in sorted(first.iterdir())[1:]:  # one training image left in the first class: 1 vs 8
        image.unlink()
    overrides = tiny_overrides(
        data,
        **{
            "train.class_weight": "balanced",
            "data.sampling": "balanced",
            "data.cache": "true",
            "train.cache_features": "true",
            "data.augment.mixup_alpha": 0.2,
        },
    )
    run, metrics = train(load_config(None, overrides), output=tmp_path / "run", verbose=0)
    assert 0.0 <= metrics["balanced_accuracy"] <= 1.0 and "imbalanced" in metrics
    check = json.loads((run.root / "data_check.json").read_text())
    assert check["class_counts"]["train"][first.name] == 1
