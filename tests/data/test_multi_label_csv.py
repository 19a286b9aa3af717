import json

import numpy as np
import pytest
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.check import check_data
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.multi_label import load_multi_label_sources, read_multi_label_csv
from kerascv_tl.data.problems import ProblemLog


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (12, 10), (i * 40 % 255, 90, 30)).save(folder / name)


def test_labels_are_parsed_into_multi_hot_rows_with_sorted_classes(tmp_path):
    _images(tmp_path / "photos", ["a.png", "b.png", "c.png", "d.png"])
    csv_path = tmp_path / "lists" / "train.csv"
    csv_path.parent.mkdir()
    csv_path.write_text(
        "path,labels\n"
        "../photos/a.png,dog|cat\n"
        "../photos/b.png, cat \n"
        "\n"
        "../photos/c.png,\n"
        f"{tmp_path}/photos/d.png,bird|dog|dog\n"
    )
    source = read_multi_label_csv(csv_path)
    assert source.class_names == ["bird", "cat", "dog"]
    assert source.labels.dtype == np.float32
    assert source.labels.tolist() == [[0, 1, 1], [0, 1, 0], [0, 0, 0], [1, 0, 1]]  # empty labels allowed
    assert source.paths[0] == str(csv_path.parent / "../photos/a.png") and source.paths[3] == f"{tmp_path}/photos/d.png"
    assert source.label_names(3) == ["bird", "dog"] and source.positives().tolist() == [1, 2, 2]
    # Validation data keeps the training classes, even those it does not show.
    val = tmp_path / "val.csv"
    val.write_text("path,labels\nphotos/a.png,cat\n")
    assert read_multi_label_csv(val, class_names=source.class_names).labels.tolist() == [[0, 1, 0]]


def test_bad_rows_are_reported_with_file_and_line_and_left_out(tmp_path):
    _images(tmp_path, ["a.png", "b.png", "c.png"])
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(
        "path,labels\n"
        "a.png,cat|dog\n"  # line 2: good
        "b.png,cat,dog\n"  # line 3: commas instead of |
        "a.png,cat\n"  # line 4: a.png again
        ",cat\n"  # line 5: no path
        "c.png,cat||dog\n"  # line 6: empty label
        "../outside.png,cat\n"  # line 7: outside the root
        "b.png,dog\n"
    )  # line 8: good
    problems = ProblemLog()
    source = read_multi_label_csv(csv_path, problems=problems, root=tmp_path)
    assert [p.rsplit("/", 1)[1] for p in source.paths] == ["a.png", "b.png"]
    messages = [p["message"] for p in problems]
    assert len(messages) == 5 and all(p["action"] == "row skipped" for p in problems)
    assert messages[0].startswith(f"{csv_path}: line 3 has 3 field(s)") and "'|'" in messages[0]
    assert messages[1] == f"{csv_path}: line 4 lists a.png again (first at line 2); only the first is used"
    assert messages[2] == f"{csv_path}: line 5 has an empty path"
    assert messages[3].startswith(f"{csv_path}: line 6: empty label in 'cat||dog'")
    assert "line 7 of" in messages[4] and "outside the dataset root" in messages[4]
    # Without a problem log, the first bad row is an error naming the file and the line.
    with pytest.raises(DataError, match=r"train.csv: line 3 has 3 field"):
        read_multi_label_csv(csv_path)


def test_unknown_labels_and_bad_files(tmp_path):
    csv_path = tmp_path / "val.csv"
    csv_path.write_text("path,labels\nx.png,cat\ny.png,cat|zebra\nz.png,\n")
    problems = ProblemLog()
    source = read_multi_label_csv(csv_path, class_names=["cat", "dog"], problems=problems)
    assert len(source) == 2 and source.labels.tolist() == [[1, 0], [0, 0]]
    assert [p["message"] for p in problems] == [
        f"{csv_path}: line 3: label(s) ['zebra'] are not among the classes ['cat', 'dog']"
    ]
    with pytest.raises(DataError, match=r"val.csv: line 3: label\(s\) \['zebra'\]"):
        read_multi_label_csv(csv_path, class_names=["cat", "dog"])
    # A single-label classification CSV (header path,label) is refused at its header.
    single = tmp_path / "single.csv"
    single.write_text("path,label\nx.png,cat\n")
    with pytest.raises(DataError, match=r"single.csv: line 1: expected the header row path,labels"):
        read_multi_label_csv(single)
    unlabelled = tmp_path / "none.csv"
    unlabelled.write_text("path,labels\nx.png,\n")
    with pytest.raises(DataError, match="at least 1 class"):
        read_multi_label_csv(unlabelled)
    with pytest.raises(DataError, match="cannot read CSV"):
        read_multi_label_csv(tmp_path / "missing.csv")


def _config(tmp_path, *extra):
    return load_config(None, ["task=multi_label", f"data.train={tmp_path}/train.csv", "data.image_size=32", *extra])


def test_seeded_split_is_deterministic_and_disjoint(tmp_path):
    names = [f"{i:02d}.png" for i in range(20)]
    (tmp_path / "train.csv").write_text(
        "path,labels\n" + "".join(f"{n},{'a|b' if i % 3 else 'a'}\n" for i, n in enumerate(names))
    )
    config = _config(tmp_path, "data.val_fraction=0.25")
    train, val = load_multi_label_sources(config.data, seed=3)
    again_train, again_val = load_multi_label_sources(config.data, seed=3)
    other = load_multi_label_sources(config.data, seed=4)[1]
    assert (len(train), len(val)) == (15, 5) and val.paths == again_val.paths and train.paths == again_train.paths
    assert not set(train.paths) & set(val.paths) and val.paths != other.paths
    assert train.class_names == val.class_names == ["a", "b"]
    # Labels travel with their images through the split.
    for part in (train, val):
        for path, row in zip(part.paths, part.labels):
            index = names.index(path.rsplit("/", 1)[1])
            assert row.tolist() == ([1, 1] if index % 3 else [1, 0])
    with pytest.raises(DataError, match="multi_label reads a CSV"):
        load_multi_label_sources(load_config(None, ["task=multi_label", f"data.train={tmp_path}"]).data, 0)


def test_the_data_check_opens_every_listed_image(tmp_path):
    _images(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "train.csv").write_text(
        "path,labels\na.png,cat\nb.png,dog|cat\nbroken.png,dog\nmissing.png,cat\na.png,dog\n"
    )
    (tmp_path / "val.csv").write_text("path,labels\nc.png,dog\nb.png,cat\n")
    check = check_data(_config(tmp_path, f"data.val={tmp_path}/val.csv"))
    found = {p["path"].rsplit("/", 1)[-1]: p["message"] for p in check.problems}
    assert set(found) == {"train.csv", "broken.png", "missing.png", "b.png"}
    assert "line 6 lists a.png again" in found["train.csv"]
    assert "also a validation file" in found["b.png"]
    # Left: a.png for training, c.png and b.png for validation.
    assert [p.rsplit("/", 1)[1] for p in check.train.paths] == ["a.png"]
    assert len(check.val) == 2 and check.files_checked == 6
    assert json.loads(json.dumps(check.to_dict()))["num_problems"] == 4
