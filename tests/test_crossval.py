"""`kerascv-tl cv`: folds, the summary, resuming a killed cross-validation, the shared feature cache and the
fold ensemble's SavedModel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import tiny_overrides

from kerascv_tl.crossval.folds import fold_indices, fold_sources, pool_sources
from kerascv_tl.crossval.report import markdown_table, summarize
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.records import DetectionRecord, DetectionSource, ImageSource


def _images(counts: list[int], prefix: str) -> ImageSource:
    labels = np.concatenate([np.full(n, c, np.int32) for c, n in enumerate(counts)])
    return ImageSource(["a", "b", "c"], labels, [f"{prefix}/{i}.png" for i in range(len(labels))])


def test_folds_partition_the_pooled_data_stratified_by_class():
    pooled = pool_sources(_images([10, 7, 4], "train"), _images([3, 2, 1], "val"))
    assert len(pooled) == 27 and pooled.paths[21] == "val/0.png" and pooled.labels[21] == 0
    folds = fold_indices(pooled, 4, seed=3)
    joined = np.concatenate(folds)
    assert sorted(joined.tolist()) == list(range(27))  # every example validates exactly once
    assert max(len(f) for f in folds) - min(len(f) for f in folds) <= 1
    for label, total in enumerate([13, 9, 5]):
        per_fold = [int((pooled.labels[f] == label).sum()) for f in folds]
        assert sum(per_fold) == total and max(per_fold) - min(per_fold) <= 1
    assert all(np.array_equal(a, b) for a, b in zip(folds, fold_indices(pooled, 4, seed=3)))
    assert not all(np.array_equal(a, b) for a, b in zip(folds, fold_indices(pooled, 4, seed=4)))
    train, val = fold_sources(pooled, folds[1], 2, 4)
    assert set(train.paths).isdisjoint(val.paths) and len(train) + len(val) == 27


def test_detection_folds_split_by_image_and_tfds_is_refused():
    records = [DetectionRecord(f"{i}.jpg", [[0, 0, 4, 4]], [i % 2], 8, 8) for i in range(10)]
    pooled = pool_sources(DetectionSource(records[:7], ["x", "y"]), DetectionSource(records[7:], ["x", "y"]))
    folds = fold_indices(pooled, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(10))
    assert [len(f) for f in folds] == [4, 3, 3]
    tfds = ImageSource(["a"], np.zeros(4, np.int32), None, tfds_name="x", tfds_split="train")
    with pytest.raises(DataError, match="TFDS"):
        pool_sources(tfds, tfds)
    with pytest.raises(DataError, match="at least"):
        fold_indices(pooled, 11, seed=0)


def test_summary_is_numpy_mean_and_std_over_the_folds():
    folds = [
        {"accuracy": 0.5, "num_examples": 10, "note": "x"},
        {"accuracy": 0.75, "num_examples": 11, "note": "y"},
        {"accuracy": 1.0, "num_examples": 10, "note": "z"},
    ]
    summary = summarize(folds, ["accuracy", "num_examples", "note", "missing"])
    assert list(summary) == ["accuracy", "num_examples"]
    assert summary["accuracy"]["mean"] == pytest.approx(np.mean([0.5, 0.75, 1.0]))
    assert summary["accuracy"]["std"] == pytest.approx(np.std([0.5, 0.75, 1.0]))
    table = markdown_table(summary, 3, 31)
    assert "| accuracy | 0.7500 ± 0.2041 | 0.5000, 0.7500, 1.0000 |" in table
    assert "| num_examples | 10.3 ± 0.5 | 10, 11, 10 |" in table


@pytest.mark.slow(seconds=90)
def test_killed_cv_resumes_shares_the_feature_cache_and_exports_an_averaging_ensemble(
    shapes_classification, tmp_path, monkeypatch
):
    import tensorflow as tf

    import kerascv_tl.recipes as recipes
    from kerascv_tl.cli import main
    from kerascv_tl.config import load_config
    from kerascv_tl.crossval import cross_validate
    from kerascv_tl.data.decode import decode_image
    from kerascv_tl.data.transforms import eval_transform
    from kerascv_tl.run_folder import RunExistsError, RunFolder

    cache, parent = tmp_path / "cache", tmp_path / "cv"
    overrides = tiny_overrides(
        shapes_classification,
        recipe="feature_extraction",
        **{"train.cache_features": "true", "train.epochs": 2, "train.feature_cache_dir": str(cache)},
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(load_config(None, overrides).to_yaml())
    args = ["cv", str(recipe), "--folds", "3", "--output", str(parent)]
    real_train, trained = recipes.train, []

    def killed_in_fold_2(config, output=None, **kwargs):
        trained.append(output.name)
        if output.name == "fold_2":
            raise RuntimeError("killed")
        return real_train(config, output, **kwargs)

    monkeypatch.setattr(recipes, "train", killed_in_fold_2)
    with pytest.raises(RuntimeError, match="killed"):
        main(args)
    assert trained == ["fold_1", "fold_2"]
    shards = sorted(cache.glob("*.npz"))
    assert len(shards) == 2  # fold 1 embedded every image: its training images, then its validation ones
    first_metrics = (parent / "fold_1" / "metrics.json").stat().st_mtime_ns
    membership = json.loads((parent / "fold_2" / "fold.json").read_text())
    assert len(membership["validation"]) == 12

    def counting(config, output=None, **kwargs):
        trained.append(output.name)
        return real_train(config, output, **kwargs)

    trained.clear()
    monkeypatch.setattr(recipes, "train", counting)
    assert main(args + ["--export-ensemble"]) == 0
    assert trained == ["fold_2", "fold_3"]  # fold 1 was finished: skipped, not retrained
    assert (parent / "fold_1" / "metrics.json").stat().st_mtime_ns == first_metrics
    assert sorted(cache.glob("*.npz")) == shards  # folds 2 and 3 embedded nothing new

    report = json.loads((parent / "cv.json").read_text())
    values = [json.loads((parent / f"fold_{k}" / "metrics.json").read_text())["accuracy"] for k in (1, 2, 3)]
    assert report["metrics"]["accuracy"]["folds"] == values
    assert report["metrics"]["accuracy"]["mean"] == pytest.approx(np.mean(values))
    assert report["metrics"]["accuracy"]["std"] == pytest.approx(np.std(values))
    assert "| accuracy |" in (parent / "cv.md").read_text()
    validated = [
        p for k in (1, 2, 3) for p in json.loads((parent / f"fold_{k}" / "fold.json").read_text())["validation"]
    ]
    assert len(validated) == len(set(validated)) == 36

    # The ensemble SavedModel's probabilities are the mean of the three fold models'.
    loaded = tf.saved_model.load(str(next((parent / "ensemble").iterdir())))
    image_bytes = open(validated[0], "rb").read()
    served = loaded.signatures["serving_default"](image_bytes=tf.constant([image_bytes]))["probabilities"].numpy()
    pixels = eval_transform(decode_image(tf.constant(image_bytes)), 32, 0.875)[None]
    folds = [RunFolder(parent / f"fold_{k}").load_model() for k in (1, 2, 3)]
    expected = np.mean([np.asarray(m(pixels, training=False)) for m in folds], axis=0)
    np.testing.assert_allclose(served, expected, atol=1e-5)

    # --final: the recipe once more on all 36 images; no held-out data, so no early stopping and the training loss
    # picks the checkpoint. The finished folds are not retrained.
    trained.clear()
    result = cross_validate(load_config(recipe), 3, output=parent, final=True)
    assert trained == ["final"]
    final_config = result.final.load_config()
    assert final_config.train.monitor == "loss" and final_config.train.early_stopping_patience == 0
    assert json.loads((parent / "final" / "metrics.json").read_text())["num_examples"] == 36

    # Another fold count over the same folder is refused rather than mixed with these folds.
    with pytest.raises(RunExistsError, match="another fold count"):
        cross_validate(load_config(recipe), 4, output=parent)


def test_ensemble_export_is_refused_for_other_tasks_before_anything_is_written(tmp_path):
    from kerascv_tl.config import ConfigError, load_config
    from kerascv_tl.crossval import cross_validate

    config = load_config(None, ["task=detection", f"data.train={tmp_path / 'not_read'}"])
    with pytest.raises(ConfigError, match="only classification"):
        cross_validate(config, 3, output=tmp_path / "cv", export_ensemble=True)
    assert not (tmp_path / "cv").exists()
