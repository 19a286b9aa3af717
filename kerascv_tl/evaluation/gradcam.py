"""Grad-CAM heatmaps for classifiers built by `kerascv_tl.tasks.classifier.classifier()`.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the last spatial feature map by the mean gradient of a
class score with respect to it and keeps the positive part of the weighted sum: the regions that raise that
class's score. The score is the class logit (the output layer without its softmax or sigmoid), so that a very
confident prediction, whose probability has saturated, still has a gradient.

Where the map comes from:

- convolutional backbones (every `keras.applications` net, KerasHub ResNet and MiT): the backbone's output
  feature map [B, h, w, C], the tensor the classifier average-pools. With pooling followed by one dense layer
  this is exactly the class activation map; h x w is the image size over the backbone's stride (7 x 7 at 224 px).
- ViT (KerasHub `ViTBackbone`): the patch tokens entering the last transformer block, the class token dropped,
  laid out on the h x w patch grid (14 x 14 for /16 patches at 224 px). The classifier reads the class token
  only, and the last block's *output* patch tokens never reach it, so the tokens that its attention mixes into
  the class token are the last place where a gradient locates evidence. These maps are coarser (one cell per
  patch) and less faithful than a CNN's: attention spreads evidence across tokens in earlier blocks, so a cell's
  weight says which token the last block read, not strictly which pixels mattered.

Everything runs in inference mode (`training=False`: BatchNorm uses its moving statistics, dropout is off) and
the maps are computed in float32 whatever the model's precision policy. The model's input stays [0, 255] pixels
(its preprocessing layer is inside it); gradients are taken with respect to the feature map, not the pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

__all__ = ["GradCam", "gradcam", "gradcam_for"]

# Layer names `classifier()` gives (part of its contract).
_PREPROCESSING, _BACKBONE, _POOL, _PREDICTIONS = "preprocessing", "backbone", "pool", "predictions"


@dataclass
class GradCam:
    """Grad-CAM for one classifier: `maps(images, classes)` -> [B, h, w] float32 heatmaps in [0, 1]."""

    features: Callable[[tf.Tensor], tf.Tensor]  # pixels -> the explained tensor (float32)
    head: Callable[[tf.Tensor], tf.Tensor]  # the explained tensor -> class logits [B, K] (float32)
    grid: Callable[[tf.Tensor], tf.Tensor]  # the explained tensor (or its gradient) -> [B, h, w, C]
    layer: str  # what the maps are computed on, in words (the explanation index repeats it)

    def maps(self, images, classes: Sequence[int]) -> np.ndarray:
        """Heatmaps [B, h, w] in [0, 1] (each divided by its maximum) for `classes[i]` of `images[i]`.

        `images`: float or uint8 [B, S, S, 3] pixels in [0, 255], as the classifier takes them. A map that is
        zero everywhere (no positive evidence for the class) stays zero."""
        images = tf.convert_to_tensor(images)
        classes = tf.convert_to_tensor(np.asarray(classes, np.int32).reshape(-1))
        if int(classes.shape[0]) != int(images.shape[0]):
            raise ValueError(f"got {images.shape[0]} images but {classes.shape[0]} target classes")
        features = self.features(images)
        with tf.GradientTape() as tape:
            tape.watch(features)
            logits = self.head(features)
            scores = tf.gather(logits, classes, axis=1, batch_dims=1)
        gradients = tape.gradient(scores, features)
        feature_grid, gradient_grid = self.grid(features), self.grid(gradients)
        weights = tf.reduce_mean(gradient_grid, axis=(1, 2), keepdims=True)  # [B, 1, 1, C]
        cam = tf.nn.relu(tf.reduce_sum(weights * feature_grid, axis=-1))
        cam = tf.where(tf.math.is_finite(cam), cam, tf.zeros_like(cam))
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        return tf.math.divide_no_nan(cam, peak).numpy().astype(np.float32)


def gradcam(model: keras.Model, images, classes: Sequence[int]) -> np.ndarray:
    """Grad-CAM heatmaps [B, h, w] in [0, 1] of `model` (a `classifier()`) for `classes[i]` of `images[i]`."""
    return gradcam_for(model).maps(images, classes)


def gradcam_for(model: keras.Model) -> GradCam:
    """The Grad-CAM of a `classifier()` model on any registry backbone (see the module docstring)."""
    try:
        preprocessing = model.get_layer(_PREPROCESSING)
        backbone = model.get_layer(_BACKBONE)
        pool = model.get_layer(_POOL)
        predictions = model.get_layer(_PREDICTIONS)
    except ValueError as e:
        raise ValueError(
            f"Grad-CAM needs a kerascv_tl classifier (layers preprocessing, backbone, pool, predictions): {e}"
        ) from None

    def head_from_pooled(pooled):
        logits = tf.matmul(tf.cast(pooled, tf.float32), tf.cast(predictions.kernel, tf.float32))
        if predictions.use_bias:
            logits = logits + tf.cast(predictions.bias, tf.float32)
        return logits

    def pixels(images):
        return preprocessing(tf.cast(images, tf.float32), training=False)

    if len(backbone.output.shape) == 4:
        return GradCam(
            features=lambda images: tf.cast(backbone(pixels(images), training=False), tf.float32),
            head=lambda fmap: head_from_pooled(pool(fmap, training=False)),
            grid=lambda fmap: fmap,
            layer=f"backbone feature map {backbone.output.shape[1]}x{backbone.output.shape[2]}",
        )
    return _vit_gradcam(backbone, pixels, lambda tokens: head_from_pooled(pool(tokens, training=False)))


def _vit_gradcam(backbone: keras.Model, pixels, head_from_tokens) -> GradCam:
    """Grad-CAM on the patch tokens entering a KerasHub ViTBackbone's last transformer block."""
    try:
        embedding = backbone.get_layer("vit_patching_and_embedding")
        encoder = backbone.get_layer("vit_encoder")
        blocks = list(encoder.encoder_layers)
    except (ValueError, AttributeError):
        raise ValueError(
            f"Grad-CAM supports convolutional backbones and KerasHub ViT; {backbone.__class__.__name__} gives "
            f"tokens {tuple(backbone.output.shape)} with no known patch grid"
        ) from None
    height, width = (int(s) for s in backbone.input.shape[1:3])
    patch = getattr(backbone, "patch_size", 16)
    patch_h, patch_w = patch if isinstance(patch, (tuple, list)) else (patch, patch)
    grid_h, grid_w = height // int(patch_h), width // int(patch_w)
    skip = 1 if getattr(embedding, "use_class_token", True) else 0

    def features(images):
        x = encoder.dropout(embedding(pixels(images)), training=False)
        for block in blocks[:-1]:
            x = block(x, training=False)
        return tf.cast(x, tf.float32)

    def head(tokens):
        return head_from_tokens(encoder.layer_norm(blocks[-1](tokens, training=False)))

    def grid(tokens):
        return tf.reshape(tokens[:, skip:, :], (-1, grid_h, grid_w, tokens.shape[-1]))

    return GradCam(
        features, head, grid, f"ViT patch tokens entering the last transformer block, {grid_h}x{grid_w} patch grid"
    )
