"""The one schedule every task follows, driven through `train` with the classification task on tiny data."""

import numpy as np
import pytest
from support import tiny_overrides

from kerascv_tl.config import load_config
from kerascv_tl.recipes import train
from kerascv_tl.tasks.classification import ClassificationTask
from kerascv_tl.training.fit import load_weights


@pytest.mark.slow(seconds=40)
def test_head_phase_then_fine_tune_from_the_best_head_checkpoint(shapes_classification, tmp_path, monkeypatch):
    calls = []
    compile_hook = ClassificationTask.compile

    def spy(self, model, setup, learning_rate):
        backbone = setup.model.get_layer("backbone")
        calls.append(
            {
                "learning_rate": learning_rate,
                "model": model.name,
                "trainable_backbone_weights": len(backbone.trainable_weights),
                "weights": [w.numpy().copy() for w in setup.model.weights],
            }
        )
        return compile_hook(self, model, setup, learning_rate)

    monkeypatch.setattr(ClassificationTask, "compile", spy)
    config = load_config(
        None,
        tiny_overrides(
            shapes_classification, **{"train.head_epochs": 2, "train.epochs": 1, "train.monitor": "val_loss"}
        ),
    )
    run, _ = train(config, output=tmp_path / "run", verbose=0)

    head, fine_tune = calls
    assert head["trainable_backbone_weights"] == 0 and isinstance(head["learning_rate"], float)
    assert fine_tune["trainable_backbone_weights"] > 0  # train.unfreeze: all
    assert not isinstance(fine_tune["learning_rate"], float)  # warmup + cosine schedule
    # The fine-tune phase starts from the best head checkpoint, which is what the run's best file held then.
    history = np.genfromtxt(run.history("head"), delimiter=",", names=True)
    best_head_epoch = int(np.argmin(history["val_loss"]))
    assert (run / "phase_head.done.json").is_file() and (run / "phase_fine_tune.done.json").is_file()
    model = run.load_model()
    load_weights(model, run / "phase_head.weights.h5")  # the LAST head epoch's weights
    last = [w.numpy() for w in model.weights]
    same_as_last = all(np.array_equal(a, b) for a, b in zip(fine_tune["weights"], last))
    assert same_as_last == (best_head_epoch == len(history) - 1)


@pytest.mark.slow(seconds=25)
def test_feature_extraction_runs_the_head_phase_only_on_cached_embeddings(shapes_classification, tmp_path, monkeypatch):
    fitted = []
    compile_hook = ClassificationTask.compile

    def spy(self, model, setup, learning_rate):
        fitted.append(model.name)
        return compile_hook(self, model, setup, learning_rate)

    monkeypatch.setattr(ClassificationTask, "compile", spy)
    config = load_config(
        None,
        tiny_overrides(
            shapes_classification,
            recipe="feature_extraction",
            **{"train.cache_features": "true", "train.feature_cache_dir": str(tmp_path / "cache")},
        ),
    )
    run, metrics = train(config, output=tmp_path / "run", verbose=0)
    assert fitted == ["head"]  # the head model on embeddings, once
    assert not run.history("fine_tune").exists()
    assert list((tmp_path / "cache").glob("*.npz"))
    # The best checkpoint is whole-model weights (loadable into the classifier), not the head model's.
    model = run.load_model()
    load_weights(model, run.best_weights)
    assert 0.0 <= metrics["accuracy"] <= 1.0
