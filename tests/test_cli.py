import json
import subprocess
import sys
import time

import pytest
from support import RECIPE_DIR, tiny_overrides

from kerascv_tl.cli import main


def _train_args(shapes, run_dir, *extra):
    args = ["train", str(RECIPE_DIR / "shapes_fine_tune.yaml"), "--output", str(run_dir)]
    for override in tiny_overrides(shapes, recipe="feature_extraction", **dict(e.split("=", 1) for e in extra)):
        args += ["--set", override]
    return args


@pytest.fixture(scope="module")
def trained_run(shapes_classification, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    assert main(_train_args(shapes_classification, run_dir, "train.epochs=2")) == 0
    return run_dir


def test_train_export_predict_evaluate_round_trip(trained_run, shapes_classification, tmp_path, capsys):
    assert main(["export", str(trained_run), "--output", str(tmp_path / "models" / "shapes")]) == 0
    folder = tmp_path / "models" / "shapes" / "1"
    assert (folder / "saved_model.pb").is_file() and (folder / "model_card.json").is_file()
    card = json.loads((folder / "model_card.json").read_text())
    assert card["labels"] == ["circle", "square", "triangle"] and "accuracy" in card["metrics"]

    image = sorted((shapes_classification / "val" / "square").glob("*.png"))[0]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "models" / "shapes"), str(image), "--json", "--top-k", "2"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["image"] == str(image) and len(line["classes"]) == 2
    assert set(line["classes"]) <= {"circle", "square", "triangle"} and line["scores"][0] >= line["scores"][1]

    # The run folder and the SavedModel score the same images identically.
    assert (
        main(
            [
                "evaluate",
                str(trained_run),
                "--data",
                str(shapes_classification / "val"),
                "--output",
                str(tmp_path / "eval_run"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                str(folder),
                "--data",
                str(shapes_classification / "val"),
                "--output",
                str(tmp_path / "eval_saved"),
            ]
        )
        == 0
    )
    from_run = json.loads((tmp_path / "eval_run" / "metrics.json").read_text())
    from_saved = json.loads((tmp_path / "eval_saved" / "metrics.json").read_text())
    assert from_run["num_examples"] == from_saved["num_examples"] == 12
    assert from_run["confusion_matrix"] == from_saved["confusion_matrix"]
    assert (tmp_path / "eval_saved" / "confusion_matrix.png").is_file()


def test_finished_run_needs_overwrite(trained_run, shapes_classification, capsys):
    assert main(_train_args(shapes_classification, trained_run, "train.epochs=2")) == 2
    assert "finished run; pass --overwrite" in capsys.readouterr().err


def test_predict_names_bad_files(trained_run, tmp_path, capsys):
    main(["export", str(trained_run), "--output", str(tmp_path / "m")])
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not a JPEG")
    import bad_files

    bomb = bad_files.bomb_png(tmp_path / "bomb.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m"), str(not_image), str(tmp_path / "missing.png"), str(bomb)]) == 2
    err = capsys.readouterr().err
    assert f"{not_image}: cannot decode image" in err and f"{tmp_path / 'missing.png'}: no such file" in err
    assert f"{bomb}: declares 900,000,000 pixels" in err


def test_config_errors_are_one_line_without_traceback(shapes_classification, tmp_path):
    command = (
        [sys.executable, "-m", "kerascv_tl.cli"]
        + _train_args(shapes_classification, tmp_path / "r")
        + ["--set", "train.epochz=3"]
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: " in result.stderr and "unknown key 'train.epochz'" in result.stderr and "epochs" in result.stderr


def test_imagenet_weights_offline_fail_fast_with_the_file_and_cache_folder(shapes_classification, tmp_path, capsys):
    from kerascv_tl.backbones.weights import keras_cache_dir

    wanted = keras_cache_dir() / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    if wanted.exists():
        pytest.skip(f"{wanted} is cached, so Keras would not need the network")
    started = time.time()
    code = main(
        _train_args(shapes_classification, tmp_path / "r", "backbone.name=resnet50", "backbone.weights=imagenet")
    )
    elapsed = time.time() - started
    err = capsys.readouterr().err
    assert code == 2 and elapsed < 10
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in err and str(keras_cache_dir()) in err


def test_backbones_lists_the_registry(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    for name in (
        "resnet50",
        "resnet101",
        "resnet152",
        "resnet50_v2",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "efficientnetv2_b0",
        "convnext_tiny",
        "vit_tiny16",
        "vit_base16",
        "hub_resnet18",
        "hub_resnet50",
    ):
        assert f"\n{name} " in out
    assert "2,257,984" in out  # MobileNetV2 without its top, as keras.applications counts it
    assert "23,561,152" in out  # KerasHub's resnet_50_imagenet preset metadata gives the same count


def test_check_data_lists_every_problem_then_a_summary(shapes_classification, tmp_path, capsys):
    import shutil

    import bad_files

    recipe = str(RECIPE_DIR / "shapes_fine_tune.yaml")
    clean = ["--set", f"data.train={shapes_classification}/train", "--set", f"data.val={shapes_classification}/val"]
    assert main(["check-data", recipe, *clean]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        "data check: 36 file(s) checked, no problems; 24 training and 12 validation examples kept",
        "training images per class: circle 8, square 8, triangle 8",
        "validation images per class: circle 4, square 4, triangle 4",
    ]
    shutil.copytree(shapes_classification / "train", tmp_path / "train")
    empty = bad_files.zero_byte(tmp_path / "train" / "square" / "empty.png")
    page = bad_files.text_as_image(tmp_path / "train" / "square" / "page.jpg")
    dirty = ["--set", f"data.train={tmp_path}/train", "--set", f"data.val={shapes_classification}/val"]
    assert main(["check-data", recipe, *dirty]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{empty}: empty file (0 bytes)  [file skipped]"
    assert lines[1].startswith(f"{page}: not an image") and lines[1].endswith("[file skipped]")
    assert lines[2].startswith("data check: 38 file(s) checked, 2 problem(s) (2 file skipped); 24 training")
    assert main(["check-data", recipe, *dirty, "--set", "data.on_bad=fail", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["on_bad"] == "fail" and [p["path"] for p in report["problems"]] == [str(empty), str(page)]


def test_a_model_file_with_code_in_it_is_refused(tmp_path, capsys):
    import keras

    from kerascv_tl.config import load_config

    run = tmp_path / "run"
    run.mkdir()
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x + 1.0)(inputs)).save(run / "model.keras")
    (run / "config.yaml").write_text(load_config(None, []).to_yaml())
    for name in ("metrics.json", "model_card.json"):
        (run / name).write_text("{}")
    (run / "class_names.json").write_text('["a", "b"]')
    assert main(["export", str(run), "--output", str(tmp_path / "exported")]) == 2
    err = capsys.readouterr().err
    assert f"error: {run / 'model.keras'}: refused to load: it holds a Lambda layer" in err
    assert not (tmp_path / "exported").exists()
