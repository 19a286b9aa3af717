import keras
import numpy as np
import pytest

from kerascv_tl.config import load_config
from kerascv_tl.recipes.fine_tune import warmup_cosine
from kerascv_tl.recipes.runner import RunFolder, best_so_far, monitor_mode, steps_per_epoch


def test_warmup_then_cosine_decay():
    schedule = warmup_cosine(1e-3, epochs=4, warmup_epochs=1, steps=10)
    lr = [float(schedule(step)) for step in range(41)]
    assert lr[0] == pytest.approx(1e-5)
    assert lr[10] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lr[:10], lr[1:11]))  # warms up
    assert all(a >= b for a, b in zip(lr[10:40], lr[11:41]))  # then decays
    assert lr[40] == pytest.approx(0.0, abs=1e-9)
    no_warmup = warmup_cosine(1e-3, epochs=2, warmup_epochs=0, steps=5)
    assert float(no_warmup(0)) == pytest.approx(1e-3)


def test_best_so_far_reads_every_phase_log(tmp_path):
    run = RunFolder(tmp_path)
    run.history("head").write_text("epoch,val_accuracy,val_loss\n0,0.5,1.0\n1,0.75,0.6\n")
    run.history("fine_tune").write_text("epoch,val_accuracy,val_loss\n0,0.7,0.4\n")
    assert best_so_far(run, "val_accuracy") == 0.75
    assert best_so_far(run, "val_loss") == 0.4
    assert best_so_far(RunFolder(tmp_path / "empty"), "val_accuracy") is None
    assert [name for name, _ in run.history_files()] == ["head", "fine_tune"]
    assert monitor_mode("val_loss") == "min" and monitor_mode("val_accuracy") == "max"


def test_steps_per_epoch_rounds_up():
    assert steps_per_epoch(10, 4) == 3 and steps_per_epoch(0, 4) == 1


def test_every_shipped_recipe_loads(monkeypatch):
    from support import PROJECT_ROOT

    monkeypatch.setenv("KERASCV_TL_ASSETS", "/assets")
    recipes = sorted((PROJECT_ROOT / "recipes").glob("*.yaml"))
    assert {p.name for p in recipes} >= {"flowers_feature_extraction.yaml", "flowers_fine_tune.yaml",
                                         "shapes_fine_tune.yaml", "oxford_flowers102_fine_tune.yaml"}
    for path in recipes:
        config = load_config(path)
        assert config.data.train
    flowers = load_config(PROJECT_ROOT / "recipes" / "flowers_fine_tune.yaml")
    assert flowers.data.train == "/assets/flowers5/train"
