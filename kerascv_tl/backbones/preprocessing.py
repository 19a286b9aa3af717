"""Pixel normalisation as data (`Preprocessing`) and as a Keras layer inside every task model.

Task models take RGB pixels in [0, 255]; the first layer normalises them the way the backbone's weights
expect. Keeping it inside the model means a notebook user, the tf.data pipeline and the exported
SavedModel all feed the same raw pixels, so nothing can apply the wrong normalisation twice or not at all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
from keras import ops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """x' = (x * scale - mean) / std per channel, after optional RGB -> BGR reordering."""

    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"
    source: str = "identity"  # where these numbers came from, for the model card

    @classmethod
    def keras_mode(cls, mode: str) -> Preprocessing:
        """The constants behind `keras.applications.imagenet_utils.preprocess_input(mode=...)`."""
        if mode == "caffe":
            return cls(1.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), "BGR", "keras preprocess_input mode=caffe")
        if mode == "tf":
            return cls(1.0 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), "RGB", "keras preprocess_input mode=tf")
        if mode == "torch":
            return cls(1.0 / 255.0, IMAGENET_MEAN, IMAGENET_STD, "RGB", "keras preprocess_input mode=torch")
        if mode == "none":
            return cls(source="inside the backbone (keras include_preprocessing)")
        raise ValueError(f"unknown keras preprocessing mode {mode!r}; expected caffe, tf, torch or none")

    @classmethod
    def from_dict(cls, data: dict, source: str) -> Preprocessing:
        unknown = set(data) - {"scale", "mean", "std", "channel_order", "source"}
        if unknown:
            raise ValueError(f"{source}: unknown preprocessing keys {sorted(unknown)}")
        return cls(
            scale=float(data.get("scale", 1.0)),
            mean=tuple(float(v) for v in data.get("mean", (0.0, 0.0, 0.0))),
            std=tuple(float(v) for v in data.get("std", (1.0, 1.0, 1.0))),
            channel_order=str(data.get("channel_order", "RGB")).upper(),
            source=source,
        )

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def layer(self, name: str = "preprocessing") -> ImagePreprocessing:
        return ImagePreprocessing(self.scale, self.mean, self.std, self.channel_order, name=name)


@keras.saving.register_keras_serializable(package="kerascv_tl")
class ImagePreprocessing(keras.layers.Layer):
    """Normalises RGB pixels in [0, 255]: (x * scale - mean) / std, optionally reordered to BGR."""

    def __init__(self, scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="RGB", **kwargs):
        # float32 whatever the global policy: normalising [0, 255] pixels is cheap, and under a mixed policy the
        # first layer of the backbone casts the result to 16 bits (a model reloaded later builds it the same way)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, got {channel_order!r}")
        self.scale = float(scale)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.channel_order = channel_order

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.channel_order == "BGR":
            x = ops.flip(x, axis=-1)
        x = x * self.scale
        x = (x - ops.array(self.mean, dtype=x.dtype)) / ops.array(self.std, dtype=x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, mean=list(self.mean), std=list(self.std), channel_order=self.channel_order)
        return config
