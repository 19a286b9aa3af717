"""Image classifier: pixels -> normalisation -> backbone -> pooling -> dropout -> softmax.

The result is a plain functional `keras.Model` taking RGB pixels in [0, 255] (float or uint8) and
returning class probabilities. Layer names are part of the contract: "preprocessing", "backbone",
"pool", "dropout", "predictions" (the feature cache and the freeze helpers find them by name).
"""

from __future__ import annotations

import keras

from kerascv_tl.backbones import Backbone, build_backbone


@keras.saving.register_keras_serializable(package="kerascv_tl")
class ClassTokenPooling(keras.layers.Layer):
    """[B, T, C] transformer tokens -> [B, C], the class token (token 0)."""

    def call(self, inputs):
        return inputs[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def classifier(
    backbone: str | Backbone,
    num_classes: int,
    weights: str | None = "imagenet",
    dropout: float = 0.2,
    image_size: int | None = None,
    preprocessing: dict | None = None,
    fallback_to_random: bool = False,
    activation: str = "softmax",
) -> keras.Model:
    """Builds a classifier on a registry backbone (name or an already built `Backbone`).

    `activation` is the output layer's: "softmax" (one label per image) or "sigmoid" (independent per-class
    probabilities, for multi-label classification).

    >>> model = kerascv_tl.classifier("mobilenet_v2", num_classes=5, weights="none", image_size=96)
    >>> model.compile("adam", "categorical_crossentropy", metrics=["accuracy"]); model.fit(...)

    The backbone is trainable as built; call `freeze_backbone(model)` for feature extraction.
    """
    if num_classes < (2 if activation == "softmax" else 1):
        raise ValueError(
            f"a {activation} classifier needs at least {2 if activation == 'softmax' else 1} classes, got {num_classes}"
        )
    if not isinstance(backbone, Backbone):
        backbone = build_backbone(backbone, weights, image_size, preprocessing, fallback_to_random)
    size = backbone.image_size
    # Nest the backbone object itself (renamed), not a functional copy of its graph: KerasHub backbones
    # serialise through their own get_config, and ViT's inner layers cannot be serialised one by one.
    features = backbone.model
    features.name = "backbone"
    inputs = keras.Input(shape=(size, size, 3), name="images")
    x = backbone.preprocessing.layer(name="preprocessing")(inputs)
    x = features(x)
    if backbone.pooling == "token":
        x = ClassTokenPooling(name="pool")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation=activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{backbone.short_name}_classifier")


def feature_extractor(model: keras.Model) -> keras.Model:
    """Pixels -> pooled embedding, sharing the classifier's layers (no copy)."""
    # The single input tensor, not a one-element list: a list makes every call with a bare image batch
    # warn that the input structure does not match.
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, model.get_layer("pool").output, name="feature_extractor")


def head_model(model: keras.Model) -> keras.Model:
    """Embedding -> probabilities, sharing the classifier's dropout and dense layers.

    Training it trains the classifier's head in place, which is how cached-feature training ends up
    with an image -> label model to export.
    """
    dim = model.get_layer("pool").output.shape[-1]
    embedding = keras.Input(shape=(dim,), name="embedding")
    x = model.get_layer("dropout")(embedding)
    outputs = model.get_layer("predictions")(x)
    return keras.Model(embedding, outputs, name="head")
