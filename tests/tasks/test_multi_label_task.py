import json

import keras
import numpy as np
import pytest
from PIL import Image, ImageDraw
from support import RECIPE_DIR, assert_png

from kerascv_tl.cli import main
from kerascv_tl.config import ConfigError, load_config
from kerascv_tl.tasks.registry import get_task, task_names

RECIPE = RECIPE_DIR / "shapes_multi_label.yaml"


def _train_args(run_dir, train, val=None, **extra):
    values = {
        "data.train": train,
        "data.image_size": 32,
        "backbone.weights": "none",
        "train.batch_size": 8,
        "recipe": "feature_extraction",
        "train.epochs": 1,
        "train.early_stopping_patience": 0,
    }
    values["data.val"] = "" if val is None else val  # empty: none, a seeded split of data.train
    values.update(extra)
    args = ["train", str(RECIPE), "--output", str(run_dir)]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


def test_config_defaults_and_refused_keys():
    assert "multi_label" in task_names()
    config = load_config(RECIPE)
    assert config.task == "multi_label" and config.train.monitor == "val_pr_auc"
    assert (
        get_task("multi_label").card_metrics[:2] == ("map", "macro_f1")
        and "threshold" in get_task("multi_label").card_metrics
    )
    for key, value in [
        ("data.augment.mixup_alpha", 0.2),
        ("data.augment.cutmix_alpha", 1.0),
        ("train.cache_features", "true"),
        ("export.top_k", 3),
        ("data.max_boxes", 10),
        ("export.score_threshold", 0.4),
        ("head.architecture", "segformer"),
    ]:
        with pytest.raises(ConfigError, match=rf"{key} is not used by multi_label"):
            load_config(RECIPE, [f"{key}={value}"])
    # What it honours is accepted.
    load_config(RECIPE, ["data.augment.rand_augment=true", "train.label_smoothing=0.1", "train.optimizer=adamw"])


def test_model_is_the_sigmoid_classifier_compiled_with_binary_cross_entropy():
    from kerascv_tl.backbones import backbone_from_config
    from kerascv_tl.tasks.base import TaskSetup

    task = get_task("multi_label")
    config = load_config(
        RECIPE, ["data.image_size=32", "backbone.weights=none", "train.label_smoothing=0.1", "train.optimizer=sgd"]
    )

    class Train:
        class_names = ["a", "b", "c", "d"]

    model = task.build_model(config, backbone_from_config(config), Train())
    assert model.get_layer("predictions").activation is keras.activations.sigmoid
    assert model.output_shape == (None, 4) and model.get_layer("backbone") is not None

    task.compile(model, TaskSetup(config, None, Train(), None, None, model, None), 0.01)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy) and model.loss.label_smoothing == 0.1
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    x = np.zeros((2, 32, 32, 3), np.float32)
    y = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], np.float32)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "pr_auc"}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from kerascv_tl.data.synthetic.multi_label import write_multi_label_dataset

    return write_multi_label_dataset(tmp_path_factory.mktemp("ml"), num_train=24, num_val=8, image_size=32, seed=0)


@pytest.mark.slow(seconds=35)
def test_train_evaluate_export_predict_through_the_cli(shapes, tmp_path, capsys):
    run = tmp_path / "run"
    val_csv = shapes / "val.csv"
    assert main(_train_args(run, shapes / "train.csv", val_csv)) == 0
    assert "validation mAP:" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_names"] == ["circle", "square", "triangle"] and metrics["num_examples"] == 8
    assert 0.0 <= metrics["map"] <= 1.0 and metrics["threshold"] in [round(0.05 * i, 2) for i in range(1, 20)]
    assert_png(run / "ap_per_class.png")
    card = json.loads((run / "model_card.json").read_text())
    assert card["task"] == "multi_label" and card["metrics"]["threshold"] == metrics["threshold"]

    # The run folder on its validation CSV: the very figures training reported (same model, same data).
    assert (
        main(["evaluate", str(run), "--data", str(val_csv), "--output", str(tmp_path / "eval"), "--batch-size", "8"])
        == 0
    )
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["map"] == pytest.approx(metrics["map"], abs=1e-6) and again["threshold"] == metrics["threshold"]
    assert again["threshold_source"].startswith("given")  # the run's tuned threshold, not one tuned on --data
    assert again["per_class"].keys() == metrics["per_class"].keys()

    assert main(["export", str(run), "--output", str(tmp_path / "models" / "ml")]) == 0
    folder = tmp_path / "models" / "ml" / "1"
    exported = json.loads((folder / "model_card.json").read_text())
    assert exported["export"]["threshold"] == metrics["threshold"]
    assert "tuned on the validation set" in exported["export"]["threshold_source"]

    image = shapes / "images" / "val" / "00001.png"
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "models" / "ml"), str(image), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["image"] == str(image) and line["threshold"] == metrics["threshold"]
    probabilities = line["probabilities"]
    assert list(probabilities) == ["circle", "square", "triangle"]
    over = sorted((n for n, p in probabilities.items() if p >= line["threshold"]), key=lambda n: -probabilities[n])
    assert line["labels"] == over and line["scores"] == [probabilities[n] for n in over]
    assert main(["predict", str(folder), str(image)]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: ")

    # The SavedModel at the threshold it serves (the card's, not re-tuned).
    assert main(["evaluate", str(folder), "--data", str(val_csv), "--output", str(tmp_path / "eval_saved")]) == 0
    served = json.loads((tmp_path / "eval_saved" / "metrics.json").read_text())
    assert served["threshold"] == metrics["threshold"] and served["threshold_source"].startswith("given")
    assert served["num_examples"] == 8 and served["saved_model"] == card["name"]


def _hand_written_dataset(root):
    """16 pictures labelled by hand-chosen rules: `red` (red background) and `bar` (a white bar), in a folder of
    their own with the CSV beside it in lists/, paths relative to the CSV; one bad row."""
    (root / "pics").mkdir(parents=True)
    (root / "lists").mkdir()
    rows = ["path,labels"]
    for i in range(16):
        red, bar = i % 2 == 0, i % 4 < 2
        image = Image.new("RGB", (36, 30), (220, 30, 30) if red else (30, 60, 200))
        if bar:
            ImageDraw.Draw(image).rectangle([4, 12, 31, 18], fill=(255, 255, 255))
        image.save(root / "pics" / f"p{i}.png")
        rows.append(f"../pics/p{i}.png," + "|".join(n for n, on in (("red", red), ("bar", bar)) if on))
    rows.insert(5, "../pics/p3.png,red,bar")  # line 6: commas instead of |
    (root / "lists" / "all.csv").write_text("\n".join(rows) + "\n")
    return root / "lists" / "all.csv"


def test_train_on_a_hand_written_csv_with_a_seeded_split(tmp_path, capsys):
    csv_path = _hand_written_dataset(tmp_path / "dataset")
    run = tmp_path / "run"
    assert (
        main(
            _train_args(
                run,
                csv_path,
                None,
                **{"data.val_fraction": 0.25, "data.root": tmp_path / "dataset", "data.train": "lists/all.csv"},
            )
        )
        == 0
    )
    assert json.loads((run / "class_names.json").read_text()) == ["bar", "red"]
    check = json.loads((run / "data_check.json").read_text())
    assert check["num_train"] == 12 and check["num_val"] == 4 and check["num_problems"] == 1
    assert check["problems"][0]["message"].startswith(f"{csv_path}: line 6 has 3 field(s)")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_examples"] == 4 and set(metrics["per_class"]) == {"bar", "red"}
    assert sum(c["support"] for c in metrics["per_class"].values()) == metrics["num_labels"]
