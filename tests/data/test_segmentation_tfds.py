import numpy as np
import pytest

from kerascv_tl.config import load_config
from kerascv_tl.data.errors import DataError
from kerascv_tl.data.mask_records import IGNORE_INDEX
from kerascv_tl.data.readers import read_segmentation_sources
from kerascv_tl.data.segmentation_pipeline import segmentation_dataset, segmentation_examples


@pytest.fixture
def pets_config(tmp_path):
    classes = tmp_path / "pets.yaml"
    classes.write_text("classes: {1: pet, 2: background, 3: border}\n")
    return load_config(
        None,
        [
            "task=segmentation",
            "data.train=tfds:oxford_iiit_pet",
            "data.tfds_val_split=test",
            f"data.tfds_data_dir={tmp_path / 'tfds'}",
            f"data.classes={classes}",
            "data.ignore_index=3",
            "data.image_size=32",
        ],
    )


def _pets(sizes):
    """Examples shaped like oxford_iiit_pet's: a trimap whose left half is 1 (pet), the rest 2, a border
    column of 3, and one stray value 7 (unknown) in the corner."""
    import tensorflow as tf

    images, masks = [], []
    for height, width in sizes:
        mask = np.full((height, width, 1), 2, np.uint8)
        mask[:, : width // 2] = 1
        mask[:, width // 2] = 3
        mask[0, 0] = 7
        images.append(np.random.default_rng(height).integers(0, 255, (height, width, 3), dtype=np.uint8))
        masks.append(mask)

    def as_dataset(self, split, **kwargs):
        return tf.data.Dataset.from_generator(
            lambda: ({"image": i, "segmentation_mask": m} for i, m in zip(images, masks)),
            output_signature={
                "image": tf.TensorSpec([None, None, 3], tf.uint8),
                "segmentation_mask": tf.TensorSpec([None, None, 1], tf.uint8),
            },
        )

    return as_dataset, masks


def test_tfds_masks_feed_the_pipeline_and_the_evaluation(pets_config, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    as_dataset, raw_masks = _pets([(40, 50), (36, 64), (48, 48), (30, 40), (52, 44)])
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        train, val = read_segmentation_sources(pets_config.data, seed=0)
        assert train.class_names == ["pet", "background"]  # the border (ignore_index 3) is not a class
        assert train.description == "tfds:oxford_iiit_pet[train]" and val.description == "tfds:oxford_iiit_pet[test]"
        images, masks = next(iter(segmentation_dataset(train, 32, batch_size=4, training=True, seed=0)))
        assert images.shape == (4, 32, 32, 3) and masks.shape == (4, 32, 32)
        assert set(np.unique(masks.numpy())) <= {0, 1, IGNORE_INDEX}
        examples = list(segmentation_examples(val))
        assert len(examples) == 5
        for (record, image, mask), raw in zip(examples, raw_masks):
            assert image.shape[:2] == mask.shape == raw.shape[:2] == (record.height, record.width)
            # Raw 1 -> pet (0), 2 -> background (1); 3 (the ignored border) and the unknown 7 -> IGNORE_INDEX.
            expected = np.select([raw[..., 0] == 1, raw[..., 0] == 2], [0, 1], IGNORE_INDEX)
            np.testing.assert_array_equal(mask, expected)


def test_tfds_example_whose_mask_size_differs_is_named(pets_config, monkeypatch):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)

    def as_dataset(self, split, **kwargs):
        return tf.data.Dataset.from_tensors(
            {"image": tf.zeros([8, 8, 3], tf.uint8), "segmentation_mask": tf.ones([8, 6, 1], tf.uint8)}
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        train, _ = read_segmentation_sources(pets_config.data, seed=0)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"tfds:oxford_iiit_pet\[train\] example"):
            next(iter(segmentation_dataset(train, 32, batch_size=1, training=False)))


def test_tfds_masks_need_class_names_and_fail_fast_offline(pets_config, monkeypatch):
    import tensorflow_datasets as tfds

    with pytest.raises(DataError, match=r"tfds:oxford_iiit_pet is not prepared in .* no network"):
        read_segmentation_sources(pets_config.data, seed=0)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    pets_config.data.classes = None
    with pytest.raises(DataError, match="TFDS masks carry no class names; set data.classes"):
        read_segmentation_sources(pets_config.data, seed=0)
