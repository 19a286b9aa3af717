import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest
from support import RECIPE_DIR, tiny_overrides

from kerascv_tl.config import load_config
from kerascv_tl.recipes import RunExistsError, train


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow(seconds=40)
def test_fine_tune_writes_a_complete_run_and_keeps_the_best_checkpoint(shapes_classification, tmp_path):
    config = load_config(None, tiny_overrides(shapes_classification, **{"train.epochs": 2, "recipe": "fine_tune"}))
    run, metrics = train(config, output=tmp_path / "run", verbose=0)
    names = {p.name for p in run.root.iterdir()}
    assert {
        "config.yaml",
        "class_names.json",
        "backbone.json",
        "model.keras",
        "metrics.json",
        "model_card.json",
        "confusion_matrix.json",
        "confusion_matrix.png",
        "training_curves.png",
        "misclassified.png",
        "history_head.csv",
        "history_fine_tune.csv",
        "logs",
    } <= names
    assert json.loads((run.root / "class_names.json").read_text()) == ["circle", "square", "triangle"]
    assert len(_rows(run.root / "history_head.csv")) == 1 and len(_rows(run.root / "history_fine_tune.csv")) == 2
    # The final model is the best epoch across both phases, evaluated through the same pipeline.
    best = max(
        float(r["val_accuracy"])
        for r in _rows(run.root / "history_head.csv") + _rows(run.root / "history_fine_tune.csv")
    )
    assert metrics["accuracy"] == pytest.approx(best, abs=1e-6)
    saved = json.loads((run.root / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"] and "per_class" in saved and "top5_accuracy" not in saved
    card = json.loads((run.root / "model_card.json").read_text())
    assert card["labels"] == ["circle", "square", "triangle"] and card["backbone"]["weights_source"] == {"kind": "none"}
    assert card["preprocessing"]["source"] == "keras preprocess_input mode=tf"
    assert load_config(run.root / "config.yaml").to_dict() == config.to_dict()
    keras.saving.load_model(run.root / "model.keras", safe_mode=True)


@pytest.mark.slow(seconds=40)
def test_finished_run_is_not_overwritten_without_permission(shapes_classification, tmp_path):
    config = load_config(None, tiny_overrides(shapes_classification, recipe="feature_extraction"))
    run, _ = train(config, output=tmp_path / "run", verbose=0)
    with pytest.raises(RunExistsError, match="finished run"):
        train(config, output=tmp_path / "run", verbose=0)
    before = (run.root / "metrics.json").stat().st_mtime_ns
    train(config, output=tmp_path / "run", overwrite=True, verbose=0)
    assert (run.root / "metrics.json").stat().st_mtime_ns != before


def test_unfinished_run_with_another_config_is_refused(shapes_classification, tmp_path):
    first = load_config(None, tiny_overrides(shapes_classification))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(first.to_yaml())
    other = load_config(None, tiny_overrides(shapes_classification, **{"train.epochs": 3}))
    with pytest.raises(RunExistsError, match="different config"):
        train(other, output=tmp_path / "run", verbose=0)


@pytest.mark.slow(seconds=45)
def test_cached_features_train_the_exported_image_model(shapes_classification, tmp_path, caplog):
    overrides = tiny_overrides(
        shapes_classification,
        recipe="feature_extraction",
        **{"train.cache_features": "true", "train.epochs": 3, "train.feature_cache_dir": str(tmp_path / "cache")},
    )
    config = load_config(None, overrides)
    run, metrics = train(config, output=tmp_path / "a", verbose=0)
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 2 and all(name.endswith(".npz") for name in cached)
    # The head trained on embeddings; the saved model is the full image -> label classifier.
    model = keras.saving.load_model(run.root / "model.keras")
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    best = max(float(r["val_accuracy"]) for r in _rows(run.root / "history_head.csv"))
    assert metrics["accuracy"] == pytest.approx(best, abs=1.0 / 12 + 1e-6)
    # Same backbone, weights, preprocessing and files: the second run reads the cache.
    caplog.set_level("INFO")
    train(load_config(None, overrides), output=tmp_path / "b", verbose=0)
    assert "feature cache hit" in caplog.text
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == cached
    # Another image size is another key.
    train(load_config(None, overrides + ["data.image_size=48"]), output=tmp_path / "c", verbose=0)
    assert len(list((tmp_path / "cache").iterdir())) == 4


@pytest.mark.slow(seconds=120)
def test_killed_run_resumes_at_its_last_step_and_ends_like_an_uninterrupted_run(shapes_classification, tmp_path):
    """SIGKILL in the middle of a fine-tune epoch; the same command then finishes the run, and its metrics
    equal those of a run that was never interrupted (same seed, dropout on)."""
    overrides = tiny_overrides(
        shapes_classification,
        **{"train.epochs": 3, "train.head_epochs": 1, "train.backup_every_steps": 1, "head.dropout": 0.3},
    )
    recipe = str(RECIPE_DIR / "shapes_fine_tune.yaml")

    def command(run_dir):
        return [sys.executable, "-m", "kerascv_tl.cli", "train", recipe, "--output", str(run_dir)] + [
            a for o in overrides for a in ("--set", o)
        ]

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run_dir = tmp_path / "run"
    process = subprocess.Popen(command(run_dir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    backup = run_dir / "backup" / "fine_tune" / "rng_state.json"  # written last by each backup, atomically
    deadline = time.time() + 240
    while process.poll() is None and time.time() < deadline:
        if backup.exists() and json.loads(backup.read_text())["batch"] >= 0:
            break  # a complete backup in the middle of an epoch
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert not (run_dir / "metrics.json").exists(), "the run finished before it could be killed"

    resumed = subprocess.run(command(run_dir), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "already trained" in resumed.stderr  # it resumed from the step backup, not from an epoch start
    assert len(_rows(run_dir / "history_head.csv")) == 1  # the finished head phase was not trained again
    assert sorted({int(r["epoch"]) for r in _rows(run_dir / "history_fine_tune.csv")}) == list(range(3))

    uninterrupted = subprocess.run(command(tmp_path / "straight"), env=env, capture_output=True, text=True, timeout=600)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    assert (run_dir / "metrics.json").read_text() == (tmp_path / "straight" / "metrics.json").read_text()


@pytest.mark.slow(seconds=60)
def test_two_runs_with_the_same_seed_write_identical_metrics(shapes_classification, tmp_path):
    overrides = tiny_overrides(
        shapes_classification,
        **{"recipe": "feature_extraction", "train.epochs": 2, "deterministic": True, "data.augment.rand_augment": True},
    )
    texts = []
    for name in ("first", "second"):
        run, _ = train(load_config(None, overrides), output=tmp_path / name, verbose=0)
        texts.append((run.root / "metrics.json").read_text())
    assert texts[0] == texts[1]
    assert "wall_time" not in texts[0]  # timings live in timings.json
    assert json.loads((tmp_path / "first" / "timings.json").read_text())["train_wall_time_s"] > 0
