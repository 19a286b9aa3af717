import csv
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kerascv_tl.data.synthetic import SHAPE_CLASSES
from kerascv_tl.data.synthetic.multi_label import multi_label_sample, sample_labels, write_multi_label_dataset


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_images_hold_several_shapes_and_the_labels_are_the_classes_drawn(tmp_path):
    root = write_multi_label_dataset(tmp_path / "ml", num_train=30, num_val=10, image_size=48, seed=5)
    rows = _rows(root / "train.csv")
    assert rows[0] == ["path", "labels"] and len(rows) == 31 and len(_rows(root / "val.csv")) == 11
    label_sets = []
    for index, (relative, labels) in enumerate(rows[1:]):
        assert relative == f"images/train/{index:05d}.png"
        sample = multi_label_sample(5, "train", index, 48)
        written = np.asarray(Image.open(root / relative))
        np.testing.assert_array_equal(written, sample.image)  # the file is the re-rendered sample
        # The labels are the classes whose pixels are in the picture (the semantic mask is class_id + 1).
        visible = sorted(SHAPE_CLASSES[v - 1] for v in np.unique(sample.semantic_mask) if v > 0)
        assert (labels.split("|") if labels else []) == visible == sample_labels(sample)
        label_sets.append(visible)
    counts = [len(s) for s in label_sets]
    assert max(counts) >= 2 and counts.count(0) == 3  # several labels per image; empty scenes 3, 13, 23
    assert sum(len(multi_label_sample(5, "train", i, 48).class_ids) >= 2 for i in range(30)) >= 10
    for name in SHAPE_CLASSES:
        assert sum(name in s for s in label_sets) >= 5


def test_a_second_call_with_the_same_arguments_keeps_the_files(tmp_path):
    root = write_multi_label_dataset(tmp_path / "ml", num_train=4, num_val=2, image_size=32, seed=1)
    stamp = (root / "train.csv").stat().st_mtime_ns
    write_multi_label_dataset(tmp_path / "ml", num_train=4, num_val=2, image_size=32, seed=1)
    assert (root / "train.csv").stat().st_mtime_ns == stamp
    write_multi_label_dataset(tmp_path / "ml", num_train=3, num_val=2, image_size=32, seed=2)
    assert len(_rows(root / "train.csv")) == 4 and not (root / "images" / "train" / "00003.png").exists()
    # Someone's own lists are never overwritten.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.csv").write_text("path,labels\nx.png,cat\n")
    with pytest.raises(FileExistsError, match=r"holds \['train.csv'\] but no shapes_manifest.json"):
        write_multi_label_dataset(tmp_path / "mine", num_train=2, num_val=2, image_size=32)
    assert (tmp_path / "mine" / "train.csv").read_text() == "path,labels\nx.png,cat\n"


def test_runs_as_a_subcommand_of_the_synthetic_package(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kerascv_tl.data.synthetic",
            "multi_label",
            str(tmp_path / "d"),
            "--image-size",
            "32",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = _rows(tmp_path / "d" / "val.csv")
    assert len(rows) == 121 and Image.open(tmp_path / "d" / rows[1][0]).size == (32, 32)
