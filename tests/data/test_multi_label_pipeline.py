import dataclasses

import numpy as np
import pytest
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.multi_label import read_multi_label_csv
from kerascv_tl.data.pipeline import eval_dataset, training_epochs

LABELS = ["a", "b|c", "", "a|b|c", "c", "b"]


@pytest.fixture()
def source(tmp_path):
    # Image i is a solid colour with red = 40 * i, so a batch's pixels say which image they came from.
    lines = ["path,labels"]
    for i, labels in enumerate(LABELS):
        Image.new("RGB", (40, 30), (40 * i, 100, 200)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{labels}")
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    return read_multi_label_csv(tmp_path / "train.csv")


def _expected_labels(index):
    return [float(name in LABELS[index].split("|")) for name in ("a", "b", "c")]


def _epoch(source, data, epoch, seed=7):
    batches = list(training_epochs(source, data, 4, seed, one_hot=False).make(epoch))
    return np.concatenate([x.numpy() for x, _ in batches]), np.concatenate([y.numpy() for _, y in batches])


def test_training_batches_pair_each_image_with_its_multi_hot_labels(source):
    data = load_config(None, ["task=multi_label", "data.image_size=32", "data.augment.random_resized_crop=false"]).data
    assert training_epochs(source, data, 4, seed=7, one_hot=False).steps == 2
    images, labels = _epoch(source, data, 0)
    assert images.shape == (6, 32, 32, 3) and labels.shape == (6, 3) and labels.dtype == np.float32
    order = [int(round(red / 40)) for red in images[:, 0, 0, 0]]
    assert sorted(order) == list(range(6))
    assert labels.tolist() == [_expected_labels(i) for i in order]
    # Another epoch, another order; the in-memory cache (data.cache) gives the very batches of the files.
    other = [int(round(red / 40)) for red in _epoch(source, data, 1)[0][:, 0, 0, 0]]
    assert sorted(other) == list(range(6)) and other != order
    cached_images, cached_labels = _epoch(source, dataclasses.replace(data, cache=True), 0)
    np.testing.assert_array_equal(cached_images, images)
    np.testing.assert_array_equal(cached_labels, labels)


def test_random_crops_are_a_pure_function_of_seed_and_epoch_and_eval_keeps_the_source_order(source):
    data = load_config(None, ["task=multi_label", "data.image_size=32", "data.augment.min_crop_area=0.3"]).data
    first, _ = _epoch(source, data, 3)
    second, _ = _epoch(source, data, 3)
    np.testing.assert_array_equal(first, second)
    batches = list(eval_dataset(source, data, batch_size=4, one_hot=False))
    labels = np.concatenate([y.numpy() for _, y in batches])
    reds = np.concatenate([x.numpy()[:, 16, 16, 0] for x, _ in batches])
    np.testing.assert_allclose(reds, [40 * i for i in range(6)], atol=0.5)
    np.testing.assert_array_equal(labels, source.labels)
