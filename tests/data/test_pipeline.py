import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.pipeline import eval_dataset, training_dataset, training_epochs
from kerascv_tl.data.readers import folder_source
from kerascv_tl.data.transforms import eval_transform, random_resized_crop, resize_shorter_side


@pytest.fixture
def source(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(6):
            size = (40 + 8 * i, 56)  # varied sizes and aspect ratios
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.jpg")
    return folder_source(tmp_path)


def _config(*overrides):
    return load_config(None, ["data.image_size=32", *overrides]).data


def _first_batch(ds):
    images, labels = next(iter(ds))
    return images.numpy(), labels.numpy()


def test_training_batches_are_float_pixels_with_one_hot_labels(source):
    images, labels = _first_batch(training_dataset(source, _config(), batch_size=5, seed=0))
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 255.0 and images.max() > 1.0
    assert labels.shape == (5, 2) and set(np.unique(labels)) <= {0.0, 1.0}
    np.testing.assert_array_equal(labels.sum(axis=1), 1.0)


@pytest.mark.parametrize("cache", [False, True])
def test_training_pipeline_is_seeded(source, cache):
    config = _config(f"data.cache={str(cache).lower()}")
    a = _first_batch(training_dataset(source, config, batch_size=4, seed=7))
    b = _first_batch(training_dataset(source, config, batch_size=4, seed=7))
    c = _first_batch(training_dataset(source, config, batch_size=4, seed=8))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("cache", ["true", "false"])
def test_each_epoch_is_shuffled_anew_and_depends_only_on_seed_and_epoch(source, cache):
    data = training_epochs(source, _config(f"data.cache={cache}", "data.augment.flip=false"), batch_size=4, seed=0)
    epochs = [
        [label for _, labels in data.make(epoch) for label in labels.numpy().argmax(1).tolist()] for epoch in (0, 1)
    ]
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(source.labels.tolist()) and epochs[0] != epochs[1]
    assert data.steps == 3
    # Epoch 1 built alone (a resumed run) is epoch 1 of the uninterrupted stream, pixel for pixel.
    stream = [images.numpy() for images, _ in data.stream(0, 2)]
    alone = [images.numpy() for images, _ in data.make(1)]
    for a, b in zip(stream[data.steps :], alone):
        np.testing.assert_array_equal(a, b)
    # Skipping a resumed epoch's first steps leaves exactly its remaining batches.
    skipped = [images.numpy() for images, _ in data.stream(1, 2, skip_steps=1)]
    assert len(skipped) == data.steps - 1
    np.testing.assert_array_equal(skipped[0], alone[1])


def test_eval_pipeline_is_eval_transform_in_source_order(source):
    config = _config()
    images, labels = _first_batch(eval_dataset(source, config, batch_size=12))
    assert labels.argmax(1).tolist() == source.labels.tolist()
    expected = eval_transform(
        tf.io.decode_jpeg(tf.io.read_file(source.paths[3]), dct_method="INTEGER_ACCURATE"), 32, config.crop_fraction
    )
    np.testing.assert_allclose(images[3], expected.numpy(), atol=1e-4)


def test_mixup_and_cutmix_give_soft_labels(source):
    config = _config("data.augment.mixup_alpha=0.4", "data.augment.cutmix_alpha=1.0", "data.augment.rand_augment=true")
    images, labels = _first_batch(training_dataset(source, config, batch_size=12, seed=0))
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert ((labels > 0.0) & (labels < 1.0)).any()
    assert images.shape == (12, 32, 32, 3)


def test_resize_shorter_side_and_centre_crop():
    image = tf.zeros([100, 200, 3], tf.uint8)
    assert resize_shorter_side(image, 50).shape == (50, 100, 3)
    assert resize_shorter_side(image, 400, upscale=False).shape == (100, 200, 3)
    # A left-right gradient: the centre crop keeps the middle columns.
    ramp = tf.cast(tf.tile(tf.range(200)[None, :, None], [100, 1, 3]), tf.float32)
    crop = eval_transform(ramp, 50, 0.5).numpy()  # shorter side -> 100 (no resize), crop 50 from the middle
    assert crop.shape == (50, 50, 3)
    assert crop[0, 0, 0] == 75.0 and crop[0, -1, 0] == 124.0


def test_random_resized_crop_is_a_function_of_the_seed():
    image = tf.random.uniform([64, 48, 3], 0, 255, seed=1)
    a = random_resized_crop(image, 32, 0.25, tf.constant([1, 2], tf.int64))
    b = random_resized_crop(image, 32, 0.25, tf.constant([1, 2], tf.int64))
    c = random_resized_crop(image, 32, 0.25, tf.constant([1, 3], tf.int64))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 32, 3) and not np.array_equal(a, c)
