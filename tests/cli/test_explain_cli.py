"""`kerascv-tl evaluate RUN --data DIR --explain N`: Grad-CAM overlays in the evaluation folder and its metrics.json."""

import json

import numpy as np
import pytest
from support import RECIPE_DIR, assert_png, tiny_overrides

from kerascv_tl.cli import main
from kerascv_tl.data.errors import DataError

COUNT = 2


@pytest.fixture(scope="module")
def run_dir(shapes_classification, tmp_path_factory):
    run = tmp_path_factory.mktemp("explain") / "run"
    args = ["train", str(RECIPE_DIR / "shapes_fine_tune.yaml"), "--output", str(run), "-q"]
    for override in tiny_overrides(shapes_classification, recipe="feature_extraction"):
        args += ["--set", override]
    assert main(args) == 0
    return run


def _expected_choices(run_dir, val):
    """(the COUNT most confident mistakes, the COUNT most confident correct per class) as (index, confidence)."""
    from kerascv_tl.data.pipeline import eval_dataset
    from kerascv_tl.recipes import RunFolder
    from kerascv_tl.tasks.registry import get_task

    run = RunFolder(run_dir)
    config = run.load_config()
    source = get_task("classification").read_eval_source(str(val), config, run.load_class_names())
    model = run.load_model()
    probs = np.concatenate([model.predict_on_batch(x) for x, _ in eval_dataset(source, config.data, 8)])
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    mistakes = [int(i) for i in order if predicted[i] != source.labels[i]][:COUNT]
    correct = {
        c: [int(i) for i in order if predicted[i] == source.labels[i] == c][:COUNT] for c in range(source.num_classes)
    }
    return mistakes, correct, confidence


@pytest.mark.slow(seconds=60)
def test_evaluate_explain_writes_overlays_index_and_metrics_key(run_dir, shapes_classification, capsys):
    val = shapes_classification / "val"
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--data", str(val), "--explain", str(COUNT)]) == 0
    out = run_dir / "eval_val"
    printed = capsys.readouterr().out
    assert f"in {out / 'explain'}" in printed and "Grad-CAM overlays" in printed

    index = json.loads((out / "explain" / "explain.json").read_text())
    assert index["method"] == "grad-cam" and index["count"] == COUNT and "feature map" in index["layer"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["explain"] == index and "accuracy" in metrics  # the evaluation's figures are kept

    # The most confident ones (compared by confidence: a barely trained model gives near ties, which another
    # batch size may order differently).
    mistakes, correct, confidence = _expected_choices(run_dir, val)
    assert len(index["mistakes"]) == COUNT and index["correct"]
    chosen = [e["confidence"] for e in index["mistakes"]]
    assert chosen == sorted(chosen, reverse=True)
    assert chosen == pytest.approx([confidence[i] for i in mistakes], abs=1e-4)
    for entry in index["mistakes"]:
        assert entry["true"] != entry["predicted"] and entry["image"].startswith(str(val / entry["true"]))
        assert entry["confidence"] == pytest.approx(confidence[entry["index"]], abs=1e-4)
    by_class = {}
    for entry in index["correct"]:
        assert entry["true"] == entry["predicted"] and entry["image"].startswith(str(val / entry["true"]))
        by_class.setdefault(entry["true"], []).append(entry["confidence"])
    names = ["circle", "square", "triangle"]
    expected = {names[c]: [confidence[i] for i in indices] for c, indices in correct.items() if indices}
    assert by_class.keys() == expected.keys()
    for name, confidences in by_class.items():
        assert confidences == pytest.approx(expected[name], abs=1e-4)

    listed = [e["file"] for e in index["mistakes"] + index["correct"]]
    assert len(set(listed)) == len(listed)
    for name in [*listed, index["grids"]["mistakes"], index["grids"]["correct"]]:
        assert_png(out / name)
    expected = {p.split("/", 1)[1] for p in listed} | {"mistakes.png", "correct.png", "explain.json"}
    assert {p.name for p in (out / "explain").iterdir()} == expected


@pytest.mark.slow(seconds=30)
def test_explain_refuses_an_exported_savedmodel_in_one_line(run_dir, shapes_classification, tmp_path, capsys):
    assert main(["export", str(run_dir), "--output", str(tmp_path / "models" / "shapes"), "-q"]) == 0
    folder = tmp_path / "models" / "shapes" / "1"
    capsys.readouterr()
    code = main(["evaluate", str(folder), "--data", str(shapes_classification / "val"), "--explain", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert (
        err == f"error: {folder}: --explain needs the Keras model: evaluate the run folder, not an exported SavedModel"
    )


def test_tasks_without_explanations_refuse_naming_the_task():
    from kerascv_tl.tasks.registry import get_task

    with pytest.raises(DataError, match="--explain is offered for classification only, not for detection"):
        get_task("detection").explain(None, None, None, "unused", [], 1)


def test_a_model_grad_cam_cannot_explain_is_refused_before_reading_the_data():
    import keras

    from kerascv_tl.evaluation.explain import explain_classifier

    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    with pytest.raises(DataError, match="--explain: Grad-CAM needs a kerascv_tl classifier"):
        explain_classifier(plain, None, None, "unused", ["a", "b"], 1)
