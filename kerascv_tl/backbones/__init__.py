"""Backbones: the registry, weight resolution and what a built backbone exposes to the task heads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import keras

from kerascv_tl.backbones.preprocessing import ImagePreprocessing, Preprocessing
from kerascv_tl.backbones.registry import REGISTRY, BackboneSpec, get_backbone_spec, list_backbones
from kerascv_tl.backbones.structure import backbone_blocks, pyramid_layer_names
from kerascv_tl.backbones.weights import WeightsError, is_preset_handle, load_preset, resolve_weights

if TYPE_CHECKING:
    from kerascv_tl.config import RecipeConfig

__all__ = [
    "Backbone",
    "BackboneSpec",
    "ImagePreprocessing",
    "Preprocessing",
    "REGISTRY",
    "WeightsError",
    "backbone_blocks",
    "backbone_from_config",
    "build_backbone",
    "get_backbone_spec",
    "list_backbones",
    "pyramid_layer_names",
]


@dataclass
class Backbone:
    """A built feature extractor and everything a task head and a model card need to know about it."""

    model: keras.Model  # normalised pixels -> feature map [B, h, w, C] or tokens [B, T, C]
    name: str
    image_size: int
    preprocessing: Preprocessing
    pooling: str  # "avg" or "token"
    weights_source: dict
    pyramid_strides: tuple[int, ...] = field(default=(8, 16, 32))

    @property
    def short_name(self) -> str:
        """A name usable in Keras layer names: a preset folder or handle becomes its last path part."""
        import re

        last = self.name.rstrip("/").rsplit("/", 1)[-1] or self.name
        return re.sub(r"[^0-9A-Za-z_.-]", "_", last)

    @property
    def pyramid_layers(self) -> dict[int, str]:
        return self.pyramid_layers_at(self.pyramid_strides)

    def info(self) -> dict:
        """What a run records about its backbone (RUN/backbone.json, the model card, the feature-cache key)."""
        return {
            "name": self.name,
            "image_size": self.image_size,
            "pooling": self.pooling,
            "preprocessing": self.preprocessing.to_dict(),
            "weights_source": self.weights_source,
            "precision": self.model.dtype_policy.name,  # the policy it was built with (part of the feature cache key)
        }

    def pyramid_layers_at(self, strides) -> dict[int, str]:
        """Stride -> layer name: the net's own `pyramid_outputs` (KerasHub conv backbones) when they cover
        `strides`, else the deepest layer at each stride read off the built model's output shapes."""
        strides = tuple(int(s) for s in strides)
        native = _native_pyramid(self.model)
        if strides and all(s in native for s in strides):
            return {s: native[s] for s in strides}
        return pyramid_layer_names(self.model, strides)


def build_backbone(
    name: str,
    weights: str | None = "imagenet",
    image_size: int | None = None,
    preprocessing: Preprocessing | dict | None = None,
    fallback_to_random: bool = False,
) -> Backbone:
    """Builds a backbone by registry name (or KerasHub preset handle / local preset folder).

    Preprocessing precedence: explicit `preprocessing`, then a sidecar JSON beside a weights file or a
    KerasHub preset's image converter, then the registry's default for the architecture.
    """
    if name not in REGISTRY and (is_preset_handle(name) or _is_dir(name)):
        resolved = load_preset(name, image_size)
        model = resolved.model
        size = image_size or model.input_shape[1]
        pooling = "token" if len(model.output_shape) == 3 else "avg"
        default_pre = Preprocessing.keras_mode("tf") if pooling == "token" else Preprocessing.keras_mode("torch")
        strides = () if pooling == "token" else (8, 16, 32)
    else:
        spec = get_backbone_spec(name)
        size = image_size or spec.default_image_size
        resolved = resolve_weights(spec, weights, size, fallback_to_random)
        default_pre, pooling, strides = spec.preprocessing, spec.pooling, spec.pyramid_strides
    if isinstance(preprocessing, dict):
        preprocessing = Preprocessing.from_dict(preprocessing, source="config backbone.preprocessing")
    chosen = preprocessing or resolved.preprocessing or default_pre
    return Backbone(resolved.model, name, size, chosen, pooling, resolved.source, strides)


def backbone_from_config(config: RecipeConfig) -> Backbone:
    """The config's `backbone:` section (name, weights, optional preprocessing override) at `data.image_size`."""
    bb = config.backbone
    preprocessing = None
    if bb.preprocessing is not None:
        preprocessing = {
            "scale": bb.preprocessing.scale,
            "mean": bb.preprocessing.mean,
            "std": bb.preprocessing.std,
            "channel_order": bb.preprocessing.channel_order,
        }
    return build_backbone(bb.name, bb.weights, config.data.image_size, preprocessing, bb.fallback_to_random)


def _native_pyramid(model: keras.Model) -> dict[int, str]:
    """Stride -> producing layer of each `pyramid_outputs` tensor, strides measured (KerasHub names levels
    differently per family: ResNet's P3 is stride 8, MiT's P3 stride 16)."""
    outputs = getattr(model, "pyramid_outputs", None) or {}
    height = model.input_shape[1]
    found = {}
    for tensor in outputs.values():
        if height and tensor.shape[1]:
            producer = next((layer.name for layer in model.layers if layer.output is tensor), None)
            if producer is not None:
                found[int(round(height / tensor.shape[1]))] = producer
    return found


def _is_dir(path: str) -> bool:
    import os

    return os.path.isdir(os.path.expanduser(path))
