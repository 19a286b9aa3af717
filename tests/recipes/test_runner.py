import pytest

from kerascv_tl.config import load_config
from kerascv_tl.run_folder import RunFolder
from kerascv_tl.training.fit import best_so_far, monitor_mode, steps_per_epoch
from kerascv_tl.training.optimizers import warmup_cosine


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
    from support import RECIPE_DIR

    monkeypatch.setenv("KERASCV_TL_ASSETS", "/assets")
    recipes = sorted(RECIPE_DIR.glob("*.yaml"))
    assert {p.name for p in recipes} >= {
        "flowers_feature_extraction.yaml",
        "flowers_fine_tune.yaml",
        "shapes_fine_tune.yaml",
        "oxford_flowers102_fine_tune.yaml",
    }
    for path in recipes:
        config = load_config(path)
        assert config.data.train
    flowers = load_config(RECIPE_DIR / "flowers_fine_tune.yaml")
    assert flowers.data.train == "/assets/flowers5/train"


# --- bad data at the start of `train` and during it ------------------------------------------------------

BAD_FILES = {  # name in train/circle -> what the message must say
    "empty.png": "empty file (0 bytes)",
    "cut.jpg": "truncated or corrupt image data",
    "cut.png": "truncated or corrupt image data",
    "page.jpg": "not an image",
    "bomb.png": "declares 900,000,000 pixels",
    "caf\\xe9.png": "file name is not valid UTF-8",
}
ODD_BUT_VALID = 7  # CMYK, 16-bit, greyscale, RGBA, palette, animated GIF, EXIF-rotated


@pytest.fixture(scope="module")
def dirty_shapes(shapes_classification, tmp_path_factory):
    """The tiny shapes dataset with bad files, valid oddities and an empty class in train, and a val CSV with
    an unknown label and a repeated row; `sneaky.png` is broken in a way the check is told to miss."""
    import shutil

    import bad_files

    root = tmp_path_factory.mktemp("dirty")
    shutil.copytree(shapes_classification / "train", root / "train")
    shutil.copytree(shapes_classification / "val", root / "val")
    circle = root / "train" / "circle"
    bad_files.broken_images(circle)
    bad_files.valid_oddities(circle)
    bad_files.truncated(circle / "sneaky.png", "PNG")
    (root / "train" / "hexagon").mkdir()
    rows = [f"{p.relative_to(root)},{p.parent.name}" for p in sorted((root / "val").glob("*/*.png"))]
    (root / "val.csv").write_text("\n".join(rows + ["val/circle/nope.png,rhombus", rows[0]]) + "\n")
    return root


def _dirty_config(root, *extra):
    from support import tiny_overrides

    return load_config(
        None,
        tiny_overrides(
            root, recipe="feature_extraction", **{"data.val": f"{root}/val.csv", **dict(e.split("=", 1) for e in extra)}
        ),
    )


def test_train_skips_every_bad_file_names_it_and_trains_on_the_rest(dirty_shapes, tmp_path, monkeypatch, caplog, capfd):
    import json

    from kerascv_tl.data import check
    from kerascv_tl.recipes import train

    real = check.image_problem
    monkeypatch.setattr(
        check,
        "image_problem",  # a file the check cannot catch, e.g. broken after it ran
        lambda path, limit: (None, (32, 32)) if str(path).endswith("sneaky.png") else real(path, limit),
    )
    with caplog.at_level("WARNING"):
        run, metrics = train(_dirty_config(dirty_shapes), output=tmp_path / "run", verbose=0)
    assert run.is_finished() and len((run / "history_head.csv").read_text().splitlines()) == 2
    report = json.loads((run / "data_check.json").read_text())
    by_name = {p["path"].rsplit("/", 1)[-1]: p["message"] for p in report["problems"]}
    circle = dirty_shapes / "train" / "circle"
    for name, reason in BAD_FILES.items():
        assert by_name[name].startswith(f"{circle}/{name}: {reason}"), by_name[name]
    assert "class folder has no images" in by_name["hexagon"]
    csv_rows = sorted(p["message"] for p in report["problems"] if p["path"].endswith("val.csv"))
    assert "row 13: label 'rhombus' is not among the classes" in csv_rows[0] and "row 14 lists" in csv_rows[1]
    assert report["num_problems"] == len(BAD_FILES) + 3 and report["on_bad"] == "skip"
    # Trained on the 24 shapes, the 7 valid oddities and sneaky.png, which the pipeline then left out, named.
    assert report["num_train"] == metrics["num_train_examples"] == 24 + ODD_BUT_VALID + 1
    assert "skipped 1 file(s) that failed to load" in capfd.readouterr().err
    assert "bad data: " in caplog.text and "training goes on without them" in caplog.text


def test_overwrite_deletes_run_folders_only(tmp_path):
    from kerascv_tl.recipes import RunExistsError

    config = load_config(None, [])
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(RunExistsError, match="holds no run .no config.yaml.; refusing to"):
            RunFolder(precious).prepare(config, overwrite=overwrite)
    assert (precious / "chapter1.tex").read_text() == "years of work" and not (precious / "config.yaml").exists()
    RunFolder(tmp_path / "run").prepare(config)  # a new folder, and a run folder again, are fine
    (tmp_path / "run" / "notes.txt").write_text("x")
    RunFolder(tmp_path / "run").prepare(config, overwrite=True)
    assert not (tmp_path / "run" / "notes.txt").exists() and (tmp_path / "run" / "config.yaml").is_file()


def test_on_bad_fail_stops_before_any_model_is_built(dirty_shapes, tmp_path):
    from kerascv_tl.data.errors import DataCheckError
    from kerascv_tl.recipes import train

    with pytest.raises(DataCheckError, match=r"problem\(s\).*data.on_bad is fail, so training did not start"):
        train(_dirty_config(dirty_shapes, "data.on_bad=fail"), output=tmp_path / "run", verbose=0)
    assert (tmp_path / "run" / "data_check.json").is_file() and not (tmp_path / "run" / "backbone.json").exists()
