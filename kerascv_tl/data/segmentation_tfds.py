"""TFDS datasets with segmentation masks (e.g. `tfds:oxford_iiit_pet`) as a `SegmentationSource`.

The image feature is `image`; the mask is the single-channel Image feature whose name mentions "mask" or
"segmentation" (oxford_iiit_pet: `segmentation_mask`). TFDS masks carry no class names, so
`data.classes` names the raw values (e.g. `{1: pet, 2: background, 3: border}`), and `data.ignore_index`
may name one of them (oxford_iiit_pet's border) to leave out of the loss and the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import tensorflow as tf

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.segmentation import (IGNORE_INDEX, MaskRecord, SegmentationSource, _class_table, map_mask_values,
                                          read_class_names)


@dataclass
class TfdsMasks:
    name: str
    split: str
    data_dir: str | None
    mask_key: str
    count: int  # 0 when TFDS has no split metadata

    def _builder(self):
        import tensorflow_datasets as tfds

        return tfds.builder(self.name, data_dir=self.data_dir)

    def _pairs(self) -> tf.data.Dataset:
        where = f"tfds:{self.name}[{self.split}] example"

        def pair(index, example):
            image, mask = example["image"], example[self.mask_key][..., 0]
            same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask)))
            check = tf.debugging.Assert(same, [where, index, "mask (H, W)", tf.shape(mask), "differs from image (H, W)",
                                               tf.shape(image)[:2]])
            with tf.control_dependencies([check]):
                return tf.identity(image), tf.identity(mask)

        ds = self._builder().as_dataset(split=self.split, shuffle_files=False)
        return ds.enumerate().map(pair, num_parallel_calls=tf.data.AUTOTUNE)

    def dataset(self, lookup: np.ndarray | None, num_classes: int) -> tf.data.Dataset:
        """(image uint8 [H, W, 3], mask uint8 [H, W] of class indices / IGNORE_INDEX)."""
        table = tf.constant(map_mask_values(np.arange(256), lookup, num_classes))
        return self._pairs().map(lambda image, mask: (image, tf.gather(table, tf.cast(mask, tf.int32))),
                                 num_parallel_calls=tf.data.AUTOTUNE)

    def examples(self, lookup: np.ndarray | None, num_classes: int) -> Iterator[tuple[MaskRecord, np.ndarray, np.ndarray]]:
        for index, (image, mask) in enumerate(self._pairs().as_numpy_iterator()):
            where = f"tfds:{self.name}[{self.split}]#{index}"
            yield (MaskRecord(where, where, int(image.shape[1]), int(image.shape[0])), image,
                   map_mask_values(mask, lookup, num_classes))


def tfds_segmentation_source(name: str, split: str, data_dir: str | None, classes: str | None,
                             ignore_value: int = IGNORE_INDEX) -> SegmentationSource:
    """A TFDS split with masks; fails in seconds (not minutes of retries) when it is not prepared offline."""
    from kerascv_tl.data.classification import prepared_tfds_builder

    builder = prepared_tfds_builder(name, data_dir)
    features = builder.info.features
    candidates = [key for key in features.keys()
                  if ("mask" in key or "segmentation" in key) and getattr(features[key], "shape", (None,))[-1] == 1]
    if "image" not in features or not candidates:
        raise DataError(f"tfds:{name}: no 'image' feature and single-channel mask feature (features: "
                        f"{', '.join(features.keys())})")
    if not classes:
        raise DataError(f"tfds:{name}: TFDS masks carry no class names; set data.classes, e.g. "
                        "'{1: pet, 2: background, 3: border}' in a YAML file, or a comma-separated list")
    names, id_map = read_class_names(classes)
    class_names, lookup = _class_table(names, id_map, ignore_value, str(classes))
    count = 0
    if builder.info.splits:
        try:
            count = builder.info.splits[split].num_examples
        except (KeyError, ValueError) as e:
            raise DataError(f"tfds:{name} has no split {split!r} ({e}); splits: {', '.join(builder.info.splits)}") from None
    masks = TfdsMasks(name, split, data_dir, candidates[0], count)
    return SegmentationSource([], class_names, f"tfds:{name}[{split}]", lookup, tfds=masks)
