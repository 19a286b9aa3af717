import time

import numpy as np
import pytest
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import stratified_split
from kerascv_tl.data.readers import csv_source, folder_source, read_classification_sources, tfds_source


def _tree(root, counts):
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 10 % 255, 0, 0)).save(root / name / f"{i:03d}.png")
    return root


def test_folder_source_sorted_classes_and_files(tmp_path):
    root = _tree(tmp_path / "train", {"zebra": 2, "ant": 3})
    (root / "ant" / "notes.txt").write_text("not an image")
    source = folder_source(root)
    assert source.class_names == ["ant", "zebra"]
    assert source.labels.tolist() == [0, 0, 0, 1, 1]
    assert [p.split("/")[-2:] for p in source.paths][:2] == [["ant", "000.png"], ["ant", "001.png"]]


def test_folder_source_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="only"):
        folder_source(_tree(tmp_path / "one", {"only": 2}))
    root = _tree(tmp_path / "two", {"a": 2})
    (root / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: class folder has no images"):
        folder_source(root)
    with pytest.raises(DataError, match="not a folder"):
        folder_source(tmp_path / "missing")


def test_val_folder_uses_training_class_order_and_rejects_new_classes(tmp_path):
    train = folder_source(_tree(tmp_path / "train", {"a": 2, "b": 2, "c": 2}))
    val = folder_source(_tree(tmp_path / "val", {"c": 1, "a": 1}), class_names=train.class_names)
    assert val.class_names == ["a", "b", "c"]
    assert val.labels.tolist() == [0, 2]
    _tree(tmp_path / "val", {"d": 1})
    with pytest.raises(DataError, match=r"\['d'\]"):
        folder_source(tmp_path / "val", class_names=train.class_names)


def test_csv_source_resolves_relative_paths_and_checks_labels(tmp_path):
    _tree(tmp_path / "imgs", {"x": 2})
    csv_path = tmp_path / "lists" / "train.csv"
    csv_path.parent.mkdir()
    csv_path.write_text(f"path,label\n../imgs/x/000.png,cat\n{tmp_path}/imgs/x/001.png,dog\n\n")
    source = csv_source(csv_path)
    assert source.class_names == ["cat", "dog"]
    assert source.paths == [str(csv_path.parent / "../imgs/x/000.png"), f"{tmp_path}/imgs/x/001.png"]
    with pytest.raises(DataError, match=r"train.csv: labels \['dog'\] are not among"):
        csv_source(csv_path, class_names=["cat", "bird"])
    bad = tmp_path / "bad.csv"
    bad.write_text("only_one_field\n")
    with pytest.raises(DataError, match=r"bad.csv: row 1 has 1 field"):
        csv_source(bad)


def test_stratified_split_is_seeded_disjoint_and_keeps_every_class(tmp_path):
    source = folder_source(_tree(tmp_path / "t", {"a": 10, "b": 5, "c": 2}))
    train, val = stratified_split(source, 0.2, seed=3)
    again_train, again_val = stratified_split(source, 0.2, seed=3)
    other_train, _ = stratified_split(source, 0.2, seed=4)
    assert train.paths == again_train.paths and val.paths == again_val.paths
    assert train.paths != other_train.paths
    assert not set(train.paths) & set(val.paths)
    assert len(train) + len(val) == len(source)
    assert np.bincount(val.labels).tolist() == [2, 1, 1]  # 20% of 10, of 5, and at least one of 2


def test_config_with_train_only_splits(tmp_path):
    _tree(tmp_path / "t", {"a": 5, "b": 5})
    config = load_config(None, [f"data.train={tmp_path}/t", "data.val_fraction=0.4"])
    train, val = read_classification_sources(config.data, seed=0)
    assert (len(train), len(val)) == (6, 4)


def test_unprepared_tfds_dataset_fails_fast_offline(tmp_path):
    started = time.time()
    with pytest.raises(DataError, match=r"tfds:mnist is not prepared in .* no network"):
        tfds_source("mnist", "train", data_dir=str(tmp_path))
    assert time.time() - started < 10
    with pytest.raises(DataError, match="no_such_dataset_xyz"):
        tfds_source("no_such_dataset_xyz", "train", data_dir=str(tmp_path))


def test_tfds_source_feeds_the_pipeline(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    from kerascv_tl.data.pipeline import eval_dataset, training_dataset

    config = load_config(None, ["data.train=tfds:beans", "data.image_size=32", f"data.tfds_data_dir={tmp_path}"])
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    with tfds.testing.mock_data(num_examples=6):
        train, val = read_classification_sources(config.data, seed=0)
        assert train.class_names == ["angular_leaf_spot", "bean_rust", "healthy"]
        images, labels = next(iter(training_dataset(train, config.data, batch_size=4, seed=0)))
        assert images.shape == (4, 32, 32, 3) and labels.shape == (4, 3)
        images, labels = next(iter(eval_dataset(val, config.data, batch_size=4)))
        assert images.shape == (4, 32, 32, 3)
