"""TensorFlow Datasets splits as sources: labelled images for classification (`tfds_source`) and images with
segmentation masks (`tfds_segmentation_source`, e.g. `tfds:oxford_iiit_pet`).

Offline, `tfds.load` retries downloads for minutes; `prepared_tfds_builder` fails in seconds instead, saying
what to do. For masks, the image feature is `image`; the mask is the single-channel Image feature whose name
mentions "mask" or "segmentation" (oxford_iiit_pet: `segmentation_mask`). TFDS masks carry no class names,
so `data.classes` names the raw values (e.g. `{1: pet, 2: background, 3: border}`), and `data.ignore_index`
may name one of them (oxford_iiit_pet's border) to leave out of the loss and the metrics.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.mask_records import IGNORE_INDEX, MaskRecord, SegmentationSource
from kerascv_tl.data.readers.class_names import read_class_names
from kerascv_tl.data.readers.masks import class_table, map_mask_values
from kerascv_tl.data.records import ImageSource

__all__ = [
    "TfdsMasks",
    "import_tfds",
    "network_available",
    "prepared_tfds_builder",
    "tfds_segmentation_source",
    "tfds_source",
]


def import_tfds(name: str):
    """`tensorflow_datasets`, imported only where a tfds: source is read: it comes with the optional `tfds` extra."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(
            f"tfds:{name} needs TensorFlow Datasets ({e}): install kerascv-tl[tfds] (pip install 'kerascv-tl[tfds]')"
        ) from None
    return tfds


def network_available(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def prepared_tfds_builder(name: str, data_dir: str | None = None):
    """A TFDS builder whose data is prepared (downloading it when there is a network). Offline `tfds.load`
    retries downloads for minutes; this fails in seconds instead, saying what to do."""
    tfds = import_tfds(name)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError and friends
        raise DataError(f"tfds:{name}: {str(e).splitlines()[0]}") from None
    if not builder.is_prepared():
        if not network_available():
            raise DataError(
                f"tfds:{name} is not prepared in {builder.data_dir} and there is no network to download it. "
                f"Prepare it on a connected machine (`tfds build {name}` or tfds.load('{name}')) and copy "
                f"the folder, then set data.tfds_data_dir."
            )
        builder.download_and_prepare()
    return builder


def tfds_source(name: str, split: str, data_dir: str | None = None) -> ImageSource:
    """A TFDS split of (image, label) examples; see `prepared_tfds_builder` for the offline behaviour."""
    builder = prepared_tfds_builder(name, data_dir)
    _, label_key = builder.info.supervised_keys or ("image", "label")
    label_feature = builder.info.features[label_key]
    names = list(getattr(label_feature, "names", None) or [str(i) for i in range(label_feature.num_classes)])
    count = 0  # unknown until read when TFDS has no split metadata
    if builder.info.splits:
        try:  # accepts TFDS split expressions such as "train+validation" or "train[:80%]"
            count = builder.info.splits[split].num_examples
        except (KeyError, ValueError) as e:
            raise DataError(
                f"tfds:{name} has no split {split!r} ({e}); splits: {', '.join(builder.info.splits)}"
            ) from None
    labels = np.zeros([count], np.int32)  # per-example labels are read lazily from the dataset
    return ImageSource(names, labels, None, name, split, data_dir, description=f"tfds:{name}[{split}]")


@dataclass
class TfdsMasks:
    name: str
    split: str
    data_dir: str | None
    mask_key: str
    count: int  # 0 when TFDS has no split metadata

    def _builder(self):
        return import_tfds(self.name).builder(self.name, data_dir=self.data_dir)

    def _pairs(self) -> tf.data.Dataset:
        where = f"tfds:{self.name}[{self.split}] example"

        def pair(index, example):
            image, mask = example["image"], example[self.mask_key][..., 0]
            same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask)))
            check = tf.debugging.Assert(
                same, [where, index, "mask (H, W)", tf.shape(mask), "differs from image (H, W)", tf.shape(image)[:2]]
            )
            with tf.control_dependencies([check]):
                return tf.identity(image), tf.identity(mask)

        ds = self._builder().as_dataset(split=self.split, shuffle_files=False)
        return ds.enumerate().map(pair, num_parallel_calls=tf.data.AUTOTUNE)

    def dataset(self, lookup: np.ndarray | None, num_classes: int) -> tf.data.Dataset:
        """(image uint8 [H, W, 3], mask uint8 [H, W] of class indices / IGNORE_INDEX)."""
        table = tf.constant(map_mask_values(np.arange(256), lookup, num_classes))
        return self._pairs().map(
            lambda image, mask: (image, tf.gather(table, tf.cast(mask, tf.int32))), num_parallel_calls=tf.data.AUTOTUNE
        )

    def examples(
        self, lookup: np.ndarray | None, num_classes: int
    ) -> Iterator[tuple[MaskRecord, np.ndarray, np.ndarray]]:
        for index, (image, mask) in enumerate(self._pairs().as_numpy_iterator()):
            where = f"tfds:{self.name}[{self.split}]#{index}"
            yield (
                MaskRecord(where, where, int(image.shape[1]), int(image.shape[0])),
                image,
                map_mask_values(mask, lookup, num_classes),
            )


def tfds_segmentation_source(
    name: str, split: str, data_dir: str | None, classes: str | None, ignore_value: int = IGNORE_INDEX
) -> SegmentationSource:
    """A TFDS split with masks; fails in seconds (not minutes of retries) when it is not prepared offline."""
    builder = prepared_tfds_builder(name, data_dir)
    features = builder.info.features
    candidates = [
        key
        for key in features.keys()
        if ("mask" in key or "segmentation" in key) and getattr(features[key], "shape", (None,))[-1] == 1
    ]
    if "image" not in features or not candidates:
        raise DataError(
            f"tfds:{name}: no 'image' feature and single-channel mask feature (features: {', '.join(features.keys())})"
        )
    if not classes:
        raise DataError(
            f"tfds:{name}: TFDS masks carry no class names; set data.classes, e.g. "
            "'{1: pet, 2: background, 3: border}' in a YAML file, or a comma-separated list"
        )
    names, id_map = read_class_names(classes)
    class_names, lookup = class_table(names, id_map, ignore_value, str(classes))
    count = 0
    if builder.info.splits:
        try:
            count = builder.info.splits[split].num_examples
        except (KeyError, ValueError) as e:
            raise DataError(
                f"tfds:{name} has no split {split!r} ({e}); splits: {', '.join(builder.info.splits)}"
            ) from None
    masks = TfdsMasks(name, split, data_dir, candidates[0], count)
    return SegmentationSource([], class_names, f"tfds:{name}[{split}]", lookup, tfds=masks)
