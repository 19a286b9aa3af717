"""A whole pretrained KerasHub task (backbone, neck and heads) as a run's starting point, with head surgery.

`start_from_preset` loads the task a preset holds (`model.preset`: a KerasHub handle or a local preset folder, such
as the ones `kerascv-tl export RUN --format preset` writes) and rebuilds it for the run's classes: the image
encoder, the neck (RetinaNet's FPN, DeepLabV3's ASPP and decoder, SegFormer's MLP decoder) and every head layer keep
the preset's weights; only the class-prediction layer is new, and each run class that matches a preset class
(`kerascv_tl.tasks.preset_classes`) starts from that class's kernel slice and bias. The rebuilt model is the same
kind of plain keras.Model the task builds itself: RGB pixels in [0, 255] in (a KerasHub preset's normalisation, from
its image converter, becomes the encoder's first layer), `RetinaNetDetector` for detection.

Weights are carried over by position: the rebuilt task is constructed from the preset's own configs, so its
variables outside the image encoder come in the same order and shapes; only the class layer's differ.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import keras
import numpy as np

from kerascv_tl.backbones import Backbone
from kerascv_tl.backbones.preprocessing import Preprocessing
from kerascv_tl.backbones.pyramid import PyramidEncoder, pyramid_encoder
from kerascv_tl.backbones.weights import converter_preprocessing, preset_download, with_fixed_image_size
from kerascv_tl.precision import float32_scope, follow_backbone_policy
from kerascv_tl.tasks.freeze import freeze_backbone, train_only, unfreeze_all
from kerascv_tl.tasks.preset_classes import PresetError, match_classes, preset_class_names

if TYPE_CHECKING:
    from kerascv_tl.config import RecipeConfig

log = logging.getLogger(__name__)

__all__ = [
    "PresetError",
    "PresetStart",
    "class_layer",
    "freeze_for_head_phase",
    "load_task_preset",
    "start_from_preset",
]


@dataclass
class PresetStart:
    """Where a run started: the preset, its classes, which run classes took over preset rows, epoch-0 metrics."""

    handle: str
    preset_class: str
    preset_num_classes: int
    classes_from: str
    matched: dict[str, str] = field(default_factory=dict)  # run class -> preset class
    fresh: list[str] = field(default_factory=list)  # run classes that start from a new initialisation
    train_heads: bool = False
    epoch_0: dict | None = None  # the task's headline metrics before any training step

    def summary(self) -> dict:
        return {
            "preset": self.handle,
            "preset_class": self.preset_class,
            "preset_num_classes": self.preset_num_classes,
            "preset_classes_from": self.classes_from,
            "matched_classes": dict(self.matched),
            "fresh_classes": list(self.fresh),
            "epoch_0": self.epoch_0,
        }


def load_task_preset(handle: str, keras_hub_task: str) -> keras.Model:
    """The whole task a KerasHub preset holds, with its weights (`keras_hub.models.<keras_hub_task>.from_preset`)."""
    import keras_hub

    import kerascv_tl.tasks  # noqa: F401  (registers the classes a kerascv-tl preset names)

    base = getattr(keras_hub.models, keras_hub_task)
    policy = keras.config.dtype_policy().name
    kwargs = {} if policy == "float32" else {"dtype": policy}
    try:
        with preset_download(handle, keras_hub_task, "set model.preset: DIR", PresetError):
            return base.from_preset(handle, **kwargs)
    except PresetError:
        raise
    except ValueError as e:
        raise PresetError(f"{handle} is not a {keras_hub_task} preset KerasHub can load: {str(e)[:400]}") from None


def start_from_preset(
    config: RecipeConfig, keras_hub_task: str, class_names: list[str]
) -> tuple[keras.Model, Backbone, PresetStart]:
    """The run's task model rebuilt from `config.model.preset` for `class_names` (call it under the strategy's
    scope and the precision policy, as `Task.build_model`), the Backbone that describes its encoder, and the
    record of what was carried over."""
    import keras_hub

    handle = config.model.preset
    loaded = load_task_preset(handle, keras_hub_task)
    old_layer = class_layer(loaded)
    old_count = int(loaded.num_classes)
    preset_names, classes_from = preset_class_names(config.model.preset_classes, handle, old_count)
    pairs = match_classes(class_names, preset_names, config.model.class_map)
    override = config.backbone.preprocessing
    override = override and vars(override)
    if isinstance(loaded, keras_hub.models.ImageClassifier):
        model, backbone = _classifier(loaded, handle, config, override, len(class_names))
        new_layer = class_layer(model)
        for source, target in zip(old_layer.weights, new_layer.weights):
            target.assign(class_rows(np.asarray(source), np.asarray(target), old_count, len(class_names), pairs))
    else:
        encoder, backbone = _pixel_encoder(loaded, handle, config.data.image_size, override)
        model = _rebuilt(loaded, encoder, len(class_names))
        _carry_weights(loaded, model, old_layer, class_layer(model), old_count, len(class_names), pairs)
    matched = {class_names[new]: preset_names[old] for new, old in pairs}
    start = PresetStart(
        handle=handle,
        preset_class=type(loaded).__name__,
        preset_num_classes=old_count,
        classes_from=classes_from,
        matched=matched,
        fresh=[name for name in class_names if name not in matched],
        train_heads=config.model.train_heads,
    )
    log.info(
        "started from preset %s (%s, %d classes): %d of %d classes take over preset rows%s",
        handle,
        start.preset_class,
        old_count,
        len(matched),
        len(class_names),
        f" ({', '.join(f'{k}<-{v}' for k, v in matched.items())})" if matched else f"; {classes_from}",
    )
    return model, backbone, start


def class_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer of a task model whose outputs are per class: RetinaNet's classification logits convolution,
    DeepLabV3's and SegFormer's 1x1 output convolution, a KerasHub image classifier's or kerascv-tl classifier's
    output Dense."""
    head = getattr(model, "classification_head", None)
    for candidate in (
        getattr(head, "prediction_layer", None),
        getattr(model, "output_conv", None),
        getattr(model, "output_segmentation_head", None),
        getattr(model, "output_dense", None),
    ):
        if candidate is not None:
            return candidate
    if "predictions" in [layer.name for layer in model.layers]:
        return model.get_layer("predictions")
    raise PresetError(f"{type(model).__name__}: no known class-prediction layer (RetinaNet, DeepLabV3, SegFormer)")


def freeze_for_head_phase(model: keras.Model, start: PresetStart | None) -> None:
    """The head phase's frozen part: the backbone for a new head; for a preset start everything but the rebuilt class
    layer, or with `model.train_heads` the backbone only. A preset's BatchNorm layers stay in inference mode (they
    are pretrained, as the backbone's are)."""
    if start is None:
        freeze_backbone(model)
    elif start.train_heads:
        unfreeze_all(model)
        freeze_backbone(model)
    else:
        train_only(model, [class_layer(model)])


def _pixel_encoder(loaded, handle: str, image_size: int, override: dict | None) -> tuple[PyramidEncoder, Backbone]:
    """The image encoder the rebuilt task uses, taking RGB pixels in [0, 255]: the preset's own when it already does
    (kerascv-tl's `PyramidEncoder`), else the preset's KerasHub encoder behind its image converter's normalisation,
    tapped at the same pyramid levels the neck reads."""
    encoder = loaded.backbone.image_encoder
    source = {"kind": "task_preset", "handle": handle, "class": type(loaded).__name__}
    if isinstance(encoder, PyramidEncoder):
        size = int(encoder.input_shape[1])
        if size != image_size:
            raise PresetError(f"preset {handle} takes {size}x{size} images; set data.image_size: {size}")
        if override:
            raise PresetError(f"preset {handle} normalises pixels inside its encoder; remove backbone.preprocessing")
        pre = Preprocessing.from_dict(encoder.preprocessing, source=f"preset {handle}")
        features = encoder.get_layer("features")
        strides = tuple(sorted(encoder.pyramid_layers))
        return encoder, Backbone(features, handle, size, pre, "avg", source, strides)
    encoder = _at_size(encoder, image_size, handle)
    pre = _converter_or_override(loaded, handle, override)
    levels = {}
    for key, tensor in encoder.pyramid_outputs.items():
        levels[int(round(image_size / int(tensor.shape[1])))] = int(key.lstrip("P"))
    offsets = {stride.bit_length() - 1 - level for stride, level in levels.items()}
    if len(offsets) != 1:
        raise PresetError(f"preset {handle}: pyramid levels {levels} are not one stride apart each")
    backbone = Backbone(encoder, handle, image_size, pre, "avg", source, tuple(sorted(levels)))
    return pyramid_encoder(backbone, strides=tuple(sorted(levels)), level_offset=offsets.pop()), backbone


def _classifier(loaded, handle: str, config, override: dict | None, num_classes: int) -> tuple[keras.Model, Backbone]:
    """kerascv-tl's classifier on a KerasHub image classifier's backbone, behind its image converter's
    normalisation; the classifier's head (average pooling, dropout, one Dense) is the KerasHub one's, so nothing but
    the class rows is left behind. Heads with more layers (ViT's pre-logits) or max pooling are refused."""
    from kerascv_tl.tasks.classifier import classifier

    head_weights = {id(v) for v in loaded.weights} - {id(v) for v in loaded.backbone.weights}
    dense = getattr(loaded, "output_dense", None)
    pooling = type(getattr(loaded, "pooler", None)).__name__
    if dense is None or head_weights != {id(v) for v in dense.weights} or pooling != "GlobalAveragePooling2D":
        raise PresetError(
            f"{handle}: {type(loaded).__name__} has a head other than average pooling and one Dense layer; start from "
            "its backbone instead (backbone.name: the preset)"
        )
    size = config.data.image_size
    encoder = _at_size(loaded.backbone, size, handle)
    pre = _converter_or_override(loaded, handle, override)
    source = {"kind": "task_preset", "handle": handle, "class": type(loaded).__name__}
    backbone = Backbone(encoder, handle, size, pre, "avg", source, ())
    return classifier(backbone, num_classes, dropout=config.head.dropout), backbone


def _at_size(encoder: keras.Model, image_size: int, handle: str) -> keras.Model:
    """A KerasHub encoder fixed at `image_size` (a free-size one rebuilt, as backbone presets are); another fixed size
    is refused."""
    shape = getattr(encoder, "image_shape", None)
    if shape is None or shape[0] is None:
        return with_fixed_image_size(encoder, image_size)
    if int(shape[0]) != image_size:
        raise PresetError(f"preset {handle} takes {shape[0]}x{shape[1]} images; set data.image_size: {shape[0]}")
    return encoder


def _converter_or_override(loaded, handle: str, override: dict | None) -> Preprocessing:
    if override:
        return Preprocessing.from_dict(override, source="config backbone.preprocessing")
    converter = getattr(getattr(loaded, "preprocessor", None), "image_converter", None)
    pre = converter_preprocessing(converter, f"image converter of {handle}") if converter is not None else None
    if pre is None:
        raise PresetError(
            f"preset {handle} has no image converter saying how pixels are normalised; set backbone.preprocessing"
        )
    return pre


def _rebuilt(loaded: keras.Model, encoder: PyramidEncoder, num_classes: int) -> keras.Model:
    """The preset's task rebuilt from its own configs on `encoder`, for `num_classes`, under the current dtype
    policy, with fresh weights (`_carry_weights` fills them)."""
    import keras_hub

    from kerascv_tl.tasks.detector import BOX_FORMAT
    from kerascv_tl.tasks.retinanet import RetinaNetDetector

    neck = loaded.backbone
    neck_config = {k: v for k, v in neck.get_config().items() if k != "dtype"}
    neck_config["image_encoder"] = encoder
    if "image_shape" in neck_config:
        neck_config["image_shape"] = tuple(encoder.input_shape[1:])
    new_neck = type(neck)(**neck_config)
    config = {k: v for k, v in loaded.get_config().items() if k != "dtype"}
    config.update(backbone=new_neck, num_classes=num_classes, preprocessor=None)
    cls = type(loaded)
    if isinstance(loaded, keras_hub.models.RetinaNetObjectDetector):
        # The detection pipeline, its loss on N replicas and the export give and take boxes as "xyxy" pixels: the
        # label encoder and the decoder follow (KerasHub converts the targets in place when the two formats differ);
        # the anchor generator keeps the preset's format, internal to the model.
        cls = RetinaNetDetector
        config["bounding_box_format"] = BOX_FORMAT
        for key in ("label_encoder", "prediction_decoder"):
            part = config.get(key)
            if isinstance(part, dict) and "bounding_box_format" in part.get("config", {}):
                part["config"]["bounding_box_format"] = BOX_FORMAT
    with float32_scope():  # as `detector()` and `segmenter()`: the task's own layers compute in float32
        model = cls.from_config(config)
    return follow_backbone_policy(model)


def _carry_weights(old, new, old_layer, new_layer, old_count: int, new_count: int, pairs) -> None:
    """Copies every variable outside the image encoders from `old` to `new` by position, and the class layer's rows
    of matched classes (`pairs`: (new index, old index)); unmatched classes keep `new`'s initialisation."""
    old_skip = {id(v) for v in old.backbone.image_encoder.weights}
    new_skip = {id(v) for v in new.backbone.image_encoder.weights}
    old_vars = [v for v in old.weights if id(v) not in old_skip]
    new_vars = [v for v in new.weights if id(v) not in new_skip]
    if len(old_vars) != len(new_vars):
        raise PresetError(f"rebuilding {old.name} gave {len(new_vars)} variables for its {len(old_vars)}")
    class_vars = {id(v) for v in new_layer.weights}
    if len(old_layer.weights) != len(new_layer.weights):
        raise PresetError(f"{old.name}: the class layer was rebuilt with other variables")
    for source, target in zip(old_vars, new_vars):
        if id(target) in class_vars:
            target.assign(class_rows(np.asarray(source), np.asarray(target), old_count, new_count, pairs))
        elif tuple(source.shape) != tuple(target.shape):
            raise PresetError(f"{target.path}: the preset's {tuple(source.shape)} does not fit {tuple(target.shape)}")
        else:
            target.assign(source)


def class_rows(old: np.ndarray, new: np.ndarray, old_count: int, new_count: int, pairs) -> np.ndarray:
    """`new` with the last-axis entries of matched classes taken from `old`. The last axis holds `groups` blocks
    of one entry per class (RetinaNet: one block per anchor, class fastest; segmenters: one block)."""
    groups = old.shape[-1] // old_count
    if old.shape[-1] != groups * old_count or new.shape[-1] != groups * new_count:
        raise PresetError(f"class layer of shape {old.shape} does not hold {old_count} classes per block")
    old_blocks = old.reshape(*old.shape[:-1], groups, old_count)
    result = new.reshape(*new.shape[:-1], groups, new_count).copy()
    for new_index, old_index in pairs:
        result[..., new_index] = old_blocks[..., old_index]
    return result.reshape(new.shape)
