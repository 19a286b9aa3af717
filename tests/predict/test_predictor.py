"""`kerascv_tl.load_predictor(...).predict(...)` on one tiny exported classifier and the run folder it came from."""

import numpy as np
import pytest
from PIL import Image
from predict_support import CLASSES, classification_run, image_files

import kerascv_tl
from kerascv_tl.cli import main
from kerascv_tl.data.errors import DataError


@pytest.fixture(scope="module")
def run_dir(shapes_classification, tmp_path_factory):
    return classification_run(tmp_path_factory.mktemp("predictor") / "run", shapes_classification)


@pytest.fixture(scope="module")
def saved_model(run_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("predictor_models") / "shapes"
    assert main(["export", str(run_dir), "--output", str(base)]) == 0
    return base


@pytest.fixture(scope="module")
def predictor(saved_model):
    return kerascv_tl.load_predictor(saved_model)


def test_the_saved_model_and_its_run_folder_predict_alike(predictor, run_dir, shapes_classification):
    paths = image_files(shapes_classification)
    from_saved = predictor.predict(paths, batch_size=5)
    from_run = kerascv_tl.load_predictor(run_dir).predict([str(p) for p in paths])
    assert [r["path"] for r in from_saved] == [str(p) for p in paths] == [r["path"] for r in from_run]
    assert [r["labels"] for r in from_saved] == [r["labels"] for r in from_run]
    np.testing.assert_allclose([r["scores"] for r in from_saved], [r["scores"] for r in from_run], atol=2e-6)
    assert len({r["labels"][0] for r in from_saved}) > 1  # the fixture's model tells images apart


def test_the_predictor_describes_its_model(predictor, saved_model):
    assert predictor.task == "classification" and predictor.class_names == CLASSES
    assert predictor.card["labels"] == CLASSES and predictor.card["export"]["top_k"] == 3
    assert predictor.folder == saved_model / "1"
    assert isinstance(predictor, kerascv_tl.Predictor)


def test_results_are_top_k_labels_and_scores(predictor, shapes_classification):
    path = image_files(shapes_classification)[0]
    (default,) = predictor.predict(path)  # one input: a list of one result
    assert list(default) == ["path", "labels", "scores"] and default["path"] == str(path)
    assert sorted(default["labels"]) == CLASSES  # the export's top_k (3 here)
    assert default["scores"] == sorted(default["scores"], reverse=True) and sum(default["scores"]) == pytest.approx(
        1, abs=1e-5
    )
    (two,) = predictor.predict([path], top_k=2)
    assert two["labels"] == default["labels"][:2] and two["scores"] == default["scores"][:2]
    assert predictor.predict([path], top_k=50)[0]["labels"] == default["labels"]  # at most every class
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        predictor.predict([path], top_k=0)


def test_bytes_and_arrays_give_the_rows_of_their_files_without_a_path(predictor, shapes_classification):
    paths = image_files(shapes_classification)[:3]
    pixels = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    by_path = predictor.predict(paths)
    mixed = predictor.predict([paths[0].read_bytes(), pixels[1], paths[2]])
    assert "path" not in mixed[0] and "path" not in mixed[1] and mixed[2]["path"] == str(paths[2])
    for row, expected in zip(mixed, by_path):
        assert row["labels"] == expected["labels"]
        np.testing.assert_allclose(row["scores"], expected["scores"], atol=1e-6)
    # A 4-D array is a batch of images; images of different sizes share a batch.
    stacked = predictor.predict(np.stack(pixels))
    assert [r["labels"] for r in stacked] == [r["labels"] for r in by_path]
    sizes = [np.zeros((20, 50, 3), np.uint8), np.full((70, 30, 3), 200, np.uint8), pixels[0]]
    together, alone = predictor.predict(sizes, batch_size=3), [predictor.predict(a)[0] for a in sizes]
    assert [r["labels"] for r in together] == [r["labels"] for r in alone]


def test_a_bad_input_raises_naming_it_or_is_reported_in_its_place(predictor, shapes_classification, tmp_path):
    good = image_files(shapes_classification)[:2]
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(DataError, match=f"^{text}: cannot decode image \\(not an image"):
        predictor.predict([good[0], text, good[1]])
    rows = predictor.predict([good[0], text, b"GIF89a broken", np.zeros((4, 4), np.uint8), good[1]], errors="report")
    assert [sorted(r) for r in rows[1:4]] == [["error", "path"], ["error"], ["error"]]
    assert rows[1]["path"] == str(text) and rows[1]["error"].startswith("cannot decode image")
    assert rows[2]["error"].startswith("cannot decode image (")  # TensorFlow's decoder, found one image at a time
    assert "uint8 [height, width, 3]; got uint8 [4, 4]" in rows[3]["error"]
    assert rows[0]["labels"] and rows[4]["labels"] and rows[4]["path"] == str(good[1])
    with pytest.raises(DataError, match="is a folder; pass its image files"):
        predictor.predict(shapes_classification / "val")
    with pytest.raises(DataError, match="input 0 \\(\\?\\): cannot predict a int"):
        predictor.predict([7])


def test_a_folder_that_is_not_a_model_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: neither a SavedModel"):
        kerascv_tl.load_predictor(tmp_path)


@pytest.mark.slow(seconds=25)
def test_litert_and_onnx_exports_predict_like_the_saved_model(
    predictor, run_dir, shapes_classification, tmp_path, capsys
):
    base = tmp_path / "shapes"
    formats = ["savedmodel", "litert", "onnx"]
    assert main(["export", str(run_dir), "--format", *formats, "--output", str(base), "--verify"]) == 0
    printed = capsys.readouterr().out
    tflite, onnx = (
        base.with_name("shapes_litert") / "shapes_float32.tflite",
        base.with_name("shapes_onnx") / "shapes.onnx",
    )
    assert f"exported LiteRT: {tflite}" in printed and f"exported ONNX: {onnx}" in printed
    assert printed.count("top1 agreement 100.00%") == 3  # --verify on the run's validation images, every format
    paths = image_files(shapes_classification)
    from_saved = predictor.predict(paths)
    for path, fmt in ((tflite, "litert"), (onnx, "onnx")):
        card = kerascv_tl.load_predictor(path).card
        assert card["labels"] == CLASSES and card["task"] == "classification"
        export = card["export"]
        assert export["format"] == fmt and export["input"]["dtype"] == "uint8" and export["image_size"] == 32
        assert export["input"]["shape"] == ["batch", 32, 32, 3] and "probabilities" in export["outputs"]
        rows = kerascv_tl.load_predictor(path).predict(paths, batch_size=4)
        assert [r["labels"] for r in rows] == [r["labels"] for r in from_saved]
        # The SavedModel resizes to float pixels; these graphs take them rounded to uint8 (up to half a grey level).
        # This fixture's head magnifies small feature differences (`spread_scores`), so the rounding moves its scores
        # by up to 0.011; the like-for-like comparison (same pixels, <= 1e-4) is --verify's, checked above.
        np.testing.assert_allclose([r["scores"] for r in rows], [r["scores"] for r in from_saved], atol=2e-2)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows = kerascv_tl.load_predictor(tflite).predict([paths[0], broken], errors="report")
    assert rows[0]["labels"] == from_saved[0]["labels"] and str(broken) in rows[1]["path"] and "error" in rows[1]
    assert main(["predict", str(onnx), str(paths[0])]) == 0
    assert from_saved[0]["labels"][0] in capsys.readouterr().out
