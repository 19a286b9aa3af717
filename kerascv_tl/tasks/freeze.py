"""Freezing and partial unfreezing of a task model's backbone, with BatchNorm kept in inference mode.

In Keras 3 a BatchNormalization layer with `trainable = False` runs in inference mode (moving statistics
fixed) even inside `fit`. Fine-tuning on a small dataset with BatchNorm updating its statistics wrecks
the pretrained features, so every helper here leaves BatchNorm layers frozen.
"""

from __future__ import annotations

import keras

from kerascv_tl.backbones import backbone_blocks


def get_backbone(model: keras.Model) -> keras.Model:
    """The pretrained part of a task model: a classifier's "backbone" layer, or the conv net a
    detector's or segmenter's pyramid encoder taps (the new FPN and heads are not part of it)."""
    encoder = getattr(getattr(model, "backbone", None), "image_encoder", None)
    if encoder is not None:
        return encoder.get_layer("features")
    try:
        return model.get_layer("backbone")
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer named 'backbone'; build it with kerascv_tl") from None


def freeze_backbone(model: keras.Model) -> None:
    """Feature extraction: nothing in the backbone trains."""
    get_backbone(model).trainable = False


def unfreeze_backbone(model: keras.Model, top_blocks: int | None = None, from_layer: str | None = None) -> list[str]:
    """Makes the top of the backbone trainable; returns the names of the blocks now trainable.

    `top_blocks=None` and `from_layer=None` unfreeze everything; `top_blocks=N` the last N blocks (see
    `kerascv_tl.backbones.backbone_blocks`); `from_layer=NAME` the layer NAME and everything after it.
    BatchNorm layers stay frozen either way.
    """
    if top_blocks is not None and from_layer is not None:
        raise ValueError("give top_blocks or from_layer, not both")
    backbone = get_backbone(model)
    blocks = backbone_blocks(backbone)
    if from_layer is not None:
        names = [layer.name for _, layers in blocks for layer in layers]
        if from_layer not in names:
            raise ValueError(f"backbone has no layer {from_layer!r}; see model.get_layer('backbone').summary()")
        start = next(i for i, (_, layers) in enumerate(blocks) if any(l.name == from_layer for l in layers))
        first_layers = blocks[start][1]
        cut = [l.name for l in first_layers].index(from_layer)
        blocks = (
            blocks[:start]
            + [(blocks[start][0] + "(frozen part)", first_layers[:cut])]
            + [(blocks[start][0], first_layers[cut:])]
            + blocks[start + 1 :]
        )
        start += 1
    elif top_blocks is None:
        start = 0
    else:
        if top_blocks < 0:
            raise ValueError(f"top_blocks must be >= 0, got {top_blocks}")
        start = max(len(blocks) - top_blocks, 0)
    backbone.trainable = True
    for index, (_, layers) in enumerate(blocks):
        for layer in layers:
            layer.trainable = index >= start
    freeze_batch_norm(backbone)
    return [name for name, _ in blocks[start:]]


def train_only(model: keras.Model, layers: list[keras.layers.Layer]) -> None:
    """Freezes every layer of `model` except `layers` (and their sublayers).

    Each layer's flag is set explicitly: the layers on the way to a kept layer stay trainable (Keras collects
    nothing under a frozen layer), every other layer is frozen. Setting `trainable` on a functional model does not
    reach every nested layer (a RetinaNet head's convolutions keep their own flag), so nothing relies on it."""
    everything = list(model._flatten_layers(include_self=True, recursive=True))
    kept = {id(sub) for layer in layers for sub in layer._flatten_layers(include_self=True, recursive=True)}
    on_the_way = {id(model)}
    for layer in everything:
        if id(layer) not in kept and any(
            id(sub) in kept for sub in layer._flatten_layers(include_self=False, recursive=True)
        ):
            on_the_way.add(id(layer))
    for layer in everything:  # parents first: a parent's setter may reach its children, which are set after it
        layer.trainable = id(layer) in kept or id(layer) in on_the_way


def unfreeze_all(model: keras.Model) -> None:
    """Every layer of `model` trainable again, each flag set explicitly (see `train_only`); BatchNorm frozen."""
    for layer in model._flatten_layers(include_self=True, recursive=True):
        layer.trainable = True
    freeze_batch_norm(model)


def freeze_batch_norm(layer: keras.layers.Layer) -> None:
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        if isinstance(sub, keras.layers.BatchNormalization):
            sub.trainable = False


def parse_unfreeze(value: int | str) -> dict:
    """Config value of `train.unfreeze` -> keyword arguments of `unfreeze_backbone`."""
    if value == "all":
        return {}
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return {"top_blocks": int(value)}
    return {"from_layer": value}
