"""`kerascv-tl predict MODEL PATH... [--output F.csv|F.jsonl]` on a tiny exported classifier and segmenter."""

import csv
import json
import shutil

import bad_files
import numpy as np
import pytest
from PIL import Image
from predict_support import BACKBONE, CLASSES, image_files, spread_scores

from kerascv_tl.cli import main

SEGMENT_CLASSES = ["background", "circle", "square"]


@pytest.fixture(scope="module")
def classifier_model(shapes_classification, tmp_path_factory):
    from kerascv_tl.export import export_classifier
    from kerascv_tl.tasks import classifier

    model = classifier(BACKBONE, len(CLASSES), weights="none", image_size=32)
    spread_scores(model, image_files(shapes_classification))
    base = tmp_path_factory.mktemp("cli_predict") / "shapes"
    export_classifier(model, CLASSES, base, top_k=3, card={"task": "classification"})
    return base


@pytest.fixture(scope="module")
def segmenter_model(tmp_path_factory):
    from kerascv_tl.export import export_segmenter
    from kerascv_tl.tasks import segmenter

    model = segmenter(BACKBONE, len(SEGMENT_CLASSES), weights="none", image_size=32)
    base = tmp_path_factory.mktemp("cli_predict") / "segments"
    export_segmenter(model, SEGMENT_CLASSES, base, card={"task": "segmentation"})
    return base


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_folder_a_pattern_and_files_give_one_row_per_image(classifier_model, shapes_classification, tmp_path, capsys):
    val = image_files(shapes_classification)
    square = image_files(shapes_classification, "train")[8]  # train/square/..., not under the pattern below
    paths = [
        str(shapes_classification / "val"),
        f"{shapes_classification}/train/circle/*.png",
        str(val[5]),
        str(square),
    ]
    expected = [str(p) for p in val] + [str(p) for p in sorted((shapes_classification / "train" / "circle").glob("*"))]
    expected.append(str(square))
    out = tmp_path / "out" / "predictions.csv"
    assert main(["predict", str(classifier_model), *paths, "--output", str(out), "--batch-size", "4"]) == 0
    assert capsys.readouterr().out.strip() == f"{len(expected)} image(s) predicted -> {out}"
    table = _read_csv(out)
    assert [r["path"] for r in table] == expected  # argument order, the repeated val[5] once
    assert list(table[0]) == ["path", "label_1", "score_1", "label_2", "score_2", "label_3", "score_3"]
    assert all(sorted([r["label_1"], r["label_2"], r["label_3"]]) == CLASSES for r in table)
    assert all(float(r["score_1"]) >= float(r["score_2"]) >= float(r["score_3"]) for r in table)

    lines = tmp_path / "out" / "predictions.jsonl"
    assert main(["predict", str(classifier_model), *paths, "--output", str(lines), "--top-k", "2"]) == 0
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["path"] for r in rows] == expected and all(list(r) == ["path", "labels", "scores"] for r in rows)
    assert [r["labels"] for r in rows] == [[r["label_1"], r["label_2"]] for r in table]
    assert len({r["labels"][0] for r in rows}) > 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["predictions.csv", "predictions.jsonl"]


def test_bad_files_are_named_and_skipped_and_the_others_predicted(
    classifier_model, shapes_classification, tmp_path, capsys
):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = [shutil.copy(p, folder / f"{i}_good.png") for i, p in enumerate(image_files(shapes_classification)[:3])]
    page = bad_files.text_as_image(folder / "1_page.jpg")
    cut = bad_files.truncated(folder / "2_cut.png", "png")
    bomb = bad_files.bomb_png(folder / "3_bomb.png")
    out = tmp_path / "p.jsonl"
    missing, nothing = tmp_path / "missing.png", f"{tmp_path}/nothing/*.jpg"
    code = main(["predict", str(classifier_model), str(folder), str(missing), nothing, "--output", str(out)])
    assert code == 2
    captured = capsys.readouterr()
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == [str(p) for p in good]
    assert f"error: {page}: cannot decode image (not an image" in captured.err
    assert f"error: {cut}: cannot decode image (truncated or corrupt image data" in captured.err
    assert f"error: {bomb}: declares 900,000,000 pixels" in captured.err
    assert f"error: {missing}: no such file" in captured.err
    assert f"error: {nothing}: no image file matches this pattern" in captured.err
    assert "Traceback" not in captured.err and captured.out.endswith("; 5 problem(s) reported above\n")


def test_without_output_each_image_is_printed(classifier_model, shapes_classification, capsys):
    paths = image_files(shapes_classification)[:2]
    assert main(["predict", str(classifier_model), *map(str, paths), "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(p) for p in paths]
    assert all(line.split(": ")[1].split(" (")[0] in CLASSES for line in lines)


def test_an_output_file_needs_a_csv_or_jsonl_suffix(classifier_model, shapes_classification, tmp_path, capsys):
    for args in (["--output", str(tmp_path / "p.txt")], ["--batch-size", "0"]):
        with pytest.raises(SystemExit) as stopped:
            main(["predict", str(classifier_model), str(shapes_classification / "val"), *args])
        assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "p.txt: the output format comes from the file name's suffix: .csv" in err
    assert "argument --batch-size: expected a positive whole number, got '0'" in err
    assert not (tmp_path / "p.txt").exists()


def test_segmentation_writes_a_mask_per_image_and_a_summary_row(segmenter_model, tmp_path, capsys):
    sizes = {"a": (32, 32), "b": (40, 24)}
    for folder, (width, height) in sizes.items():
        pixels = np.random.default_rng(len(folder)).integers(0, 255, (height, width, 3), dtype=np.uint8)
        (tmp_path / "in" / folder).mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / "in" / folder / "same.png")
    out = tmp_path / "out" / "seg.csv"
    assert main(["predict", str(segmenter_model), str(tmp_path / "in"), "--output", str(out)]) == 0
    table = _read_csv(out)
    assert list(table[0]) == ["path", "mask_file", "width", "height"] + [f"fraction_{n}" for n in SEGMENT_CLASSES]
    masks = tmp_path / "out" / "seg_masks"
    assert [r["mask_file"] for r in table] == [str(masks / "same_mask.png"), str(masks / "same-2_mask.png")]
    for row, (width, height) in zip(table, sizes.values()):
        assert (int(row["width"]), int(row["height"])) == (width, height)
        assert sum(float(row[f"fraction_{n}"]) for n in SEGMENT_CLASSES) == pytest.approx(1.0)
        with Image.open(row["mask_file"]) as mask:
            assert mask.size == (width, height) and mask.mode == "L"
            assert set(np.unique(np.asarray(mask))) <= {0, 1, 2}
    lines = tmp_path / "out" / "seg.jsonl"
    elsewhere = tmp_path / "masks_here"
    command = ["predict", str(segmenter_model), str(tmp_path / "in" / "b"), "--output", str(lines)]
    assert main([*command, "--masks-dir", str(elsewhere)]) == 0
    (row,) = [json.loads(line) for line in lines.read_text().splitlines()]
    assert sorted(row) == ["class_fractions", "height", "mask_file", "path", "width"]
    assert row["mask_file"] == str(elsewhere / "same_mask.png") and list(row["class_fractions"]) == SEGMENT_CLASSES
