"""Typed recipe configs: dataclasses loaded from YAML and overridden with `--set section.key=value`.

A recipe's whole behaviour is in one `RecipeConfig`. `load_config` reads YAML with `yaml.safe_load`,
applies overrides, expands `${VAR}` / `${VAR:-default}` in strings, and checks every key and type:
an unknown key or a wrong type is a `ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from kerascv_tl.config_checks import ConfigError, check_values

KERAS_HUB_ASPECT_RATIOS = (0.5, 1.0, 2.0)  # RetinaNetObjectDetector's anchor height / width ratios
BOX_LOSSES = ("smooth_l1", "huber")  # head.box_loss (tasks/detection.py compiles them)
SEGMENTATION_TTA = ("none", "flip")  # export.tta (data/transforms.py segmentation_logits runs them)

RECIPES = ("feature_extraction", "fine_tune")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def _choices(*values: str) -> dict:
    return {"choices": values}


def task_names() -> tuple[str, ...]:
    """The registered tasks (`kerascv_tl.tasks.registry`), read when a config is checked: importing the
    registry imports the task package (TensorFlow), which reading this module must not."""
    from kerascv_tl.tasks.registry import task_names as registered

    return registered()


@dataclass
class PreprocessingConfig:
    """Explicit pixel normalisation: x' = (x * scale - mean) / std on RGB pixels in [0, 255]."""

    scale: float = 1.0
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    channel_order: str = field(default="RGB", metadata=_choices("RGB", "BGR"))


@dataclass
class AugmentConfig:
    random_resized_crop: bool = True
    min_crop_area: float = 0.25  # smallest fraction of the image a random crop keeps
    flip: bool = True
    rand_augment: bool = False
    mixup_alpha: float = 0.0  # 0 disables MixUp
    cutmix_alpha: float = 0.0  # 0 disables CutMix


@dataclass
class DataConfig:
    # classification: class-per-folder tree, CSV file (path,label) or tfds:NAME
    # detection: COCO instances JSON, VOC folder, YOLO images folder, or the pennfudan folder
    train: str = ""
    val: str | None = None  # same kinds; None -> seeded split of `train`
    # segmentation: a folder with images/ and masks/ (matched by file stem), or the pennfudan folder
    format: str = field(
        default="auto", metadata=_choices("auto", "folder", "csv", "tfds", "coco", "voc", "yolo", "pennfudan", "masks")
    )
    image_root: str | None = None  # COCO: folder the JSON's file names are relative to (default: the JSON's folder)
    val_image_root: str | None = None  # COCO validation images (default: image_root)
    classes: str | None = None  # YOLO names YAML; segmentation: YAML/JSON (list or {mask id: name}) or "a,b,c"
    ignore_index: int = 255  # segmentation: mask value excluded from the loss and every metric
    max_boxes: int = 100  # detection: boxes per image after padding
    image_size: int = 224
    crop_fraction: float = 0.875  # eval: resize shorter side to image_size / crop_fraction, centre-crop
    val_fraction: float = 0.2
    cache: bool = False  # keep decoded (shrunk) images in memory after the first epoch
    shuffle_buffer: int = 2048
    tfds_data_dir: str | None = None
    tfds_train_split: str = "train"
    tfds_val_split: str = "validation"
    # what a bad file, row, box or mask found by the data check does: skip = leave it out, list it loudly and
    # train on the rest; fail = list every problem and stop before training (kerascv_tl/data/check.py)
    on_bad: str = field(default="skip", metadata=_choices("skip", "fail"))
    root: str | None = None  # dataset root: relative data paths start here; no data path may lead outside it
    max_image_pixels: int = 89_478_485  # larger declared width x height is refused undecoded (PIL's bomb limit)
    # Train on a subset of the classes (names as the data spells them, case-insensitive), in this order; every other
    # class's images (classification), boxes (detection) or pixels (segmentation: they become background) are
    # dropped and counted in the log. None: every class.
    keep_classes: list[str] | None = None
    # classification: the order of training examples. natural = each example once per epoch; balanced = each epoch
    # draws its classes equally often (rare classes repeat, common ones are subsampled), a pure function of
    # (seed, epoch) like every epoch here; an epoch stays len(train) examples long. Not for TFDS splits
    sampling: str = field(default="natural", metadata=_choices("natural", "balanced"))
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class BackboneConfig:
    name: str = "mobilenet_v2"  # registry name, KerasHub preset handle or local preset folder
    weights: str = "imagenet"  # imagenet | none | PATH (.weights.h5 / .keras) | KerasHub preset
    preprocessing: PreprocessingConfig | None = None  # overrides the backbone's / sidecar's
    fallback_to_random: bool = False  # missing local weights -> warn and use random init


@dataclass
class ModelConfig:
    """A whole pretrained task (backbone, neck and heads) as the starting point (kerascv_tl/tasks/presets.py)."""

    # a KerasHub task preset: kaggle://... / hf://... handle, built-in name, or a local preset folder (e.g. one that
    # `kerascv-tl export RUN --format preset` wrote); None: a new head on `backbone`
    preset: str | None = None
    # the preset's class names, for head surgery: coco80 | coco91 | voc21 | a file (YAML/JSON list or one name per
    # line) | "a,b,c"; None: the preset's metadata.json `class_names`, if any (else every class starts fresh)
    preset_classes: str | None = None
    class_map: dict[str, str] = field(default_factory=dict)  # new class -> preset class, where the names differ
    # head phase of a preset start: false = only the rebuilt class layer trains; true = the heads too (RetinaNet's
    # box and class towers, the segmenter's decoder); the backbone and neck stay frozen either way
    train_heads: bool = False


@dataclass
class HeadConfig:
    dropout: float = 0.2
    # segmentation: deeplabv3 (any conv backbone) or segformer (MiT, or a conv backbone's pyramid); auto picks
    # segformer for mit_* backbones, else deeplabv3
    architecture: str = field(default="auto", metadata=_choices("auto", "deeplabv3", "segformer"))
    # detection: anchor shapes (height / width) at every location and scale: a list (default: KerasHub's RetinaNet
    # ratios), or auto = three ratios fitted to the training boxes (their height / width at the 1/6, 1/2 and 5/6
    # quantiles)
    anchor_aspect_ratios: str | list[float] = field(
        default_factory=lambda: list(KERAS_HUB_ASPECT_RATIOS), metadata=_choices("auto")
    )
    # detection: box regression loss on the anchor-relative deltas: smooth_l1 (beta 0.1, slope 1 beyond it: the
    # reference RetinaNet's) or huber (KerasHub's default, delta 1: a box 10% off trains with a tenth of the slope)
    box_loss: str = field(default="smooth_l1", metadata=_choices(*BOX_LOSSES))
    # detection: GroupNorm after each conv of RetinaNet's box and class towers (KerasHub's use_prediction_head_norm,
    # off in KerasHub's default; on in torchvision's RetinaNet v2)
    group_norm: bool = True


@dataclass
class TrainConfig:
    epochs: int = 10  # feature_extraction: head epochs; fine_tune: epochs after unfreezing
    batch_size: int = 32
    learning_rate: float = 1e-3  # head learning rate
    optimizer: str = field(default="adam", metadata=_choices("adam", "adamw", "sgd"))
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    # classification and segmentation: per-class loss weights, applied as per-example (per-pixel) sample weights in
    # the tf.data pipeline. none; balanced = n_examples / (n_classes * n_class) from the training labels (pixels for
    # segmentation, on masks subsampled to 64 px a side); or {class name: weight} (names case-insensitive, classes
    # left out weigh 1). Validation stays unweighted
    class_weight: str | dict[str, float] = "none"
    early_stopping_patience: int = 5  # 0 disables early stopping
    # a metric Keras logs, e.g. val_loss; auto = the task's default (classification val_accuracy, detection
    # val_loss, segmentation val_mean_iou)
    monitor: str = "auto"
    cache_features: bool = False  # feature_extraction: run the frozen backbone once, train on embeddings
    feature_cache_dir: str | None = None  # default: <output_dir>/.feature_cache
    # cache_features: fixed views of each training image cached as extra rows (augmentation that survives the
    # cache): flip (mirror), zoom (central 80% of the evaluation crop), zoom_flip
    cache_views: list[str] = field(default_factory=list)
    head_epochs: int = 3  # fine_tune phase 1
    unfreeze: int | str = "all"  # fine_tune phase 2: "all", top N blocks, or a layer name
    fine_tune_learning_rate: float = 1e-4
    warmup_epochs: int = 1
    backup_every_steps: int = 0  # 0: BackupAndRestore saves at each epoch end only
    # with N replicas: none = batch_size is the global batch; batch = batch_size per replica; batch_and_lr = that
    # and learning rates x N (linear scaling rule)
    scale_to_replicas: str = field(default="none", metadata=_choices("none", "batch", "batch_and_lr"))
    sync_batch_norm: bool = True  # with N replicas, BatchNorm statistics over the global batch


@dataclass
class ExportConfig:
    name: str | None = None  # defaults to the run folder's name
    dir: str = "saved_models"
    top_k: int = 5  # classification
    score_threshold: float = 0.3  # detection
    max_detections: int = 100  # detection
    iou_threshold: float = 0.5  # detection NMS
    probabilities: bool = False  # segmentation: also return class probabilities at model resolution
    # segmentation: flip = test-time augmentation, the logits of the image and of its mirror image averaged, in the
    # exported graphs and in every evaluation of the run (twice the network's cost); none = one pass
    tta: str = field(default="none", metadata=_choices(*SEGMENTATION_TTA))
    # What `kerascv-tl export` and `train --export` write: savedmodel (TF Serving, encoded bytes in), litert
    # (.tflite) and onnx (.onnx), the last two taking pixels at the model's input size (docs/deploy.md)
    formats: list[str] = field(default_factory=lambda: ["savedmodel"])
    quantize: str = field(default="none", metadata=_choices("none", "float16", "dynamic", "int8"))  # LiteRT
    calibration_images: int = 200  # int8: training images the converter calibrates on
    input_dtype: str = field(default="uint8", metadata=_choices("uint8", "float32"))  # LiteRT/ONNX pixels
    output_dtype: str = field(default="float32", metadata=_choices("float32", "uint8"))  # uint8: int8 LiteRT only
    # The SavedModel refuses images whose header declares more pixels (None: data.max_image_pixels) and
    # requests of more images than max_batch, before decoding anything
    max_image_pixels: int | None = None
    max_batch: int = 64


@dataclass
class RecipeConfig:
    recipe: str = field(default="fine_tune", metadata=_choices(*RECIPES))
    task: str = field(default="classification", metadata={"choices": task_names})
    seed: int = 42
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism()
    strategy: str = field(default="auto", metadata=_choices(*STRATEGIES))
    # Keras dtype policy the model is built with (kerascv_tl/precision.py): mixed_* compute in 16 bits with
    # float32 weights; the task outputs, losses and metrics stay float32; mixed_float16 gets Keras' loss scaling
    precision: str = field(default="float32", metadata=_choices(*PRECISIONS))
    # XLA for every model.compile: true, false, or auto = off when TensorFlow sees only CPUs (measured training on
    # 2 cores: MobileNetV2 7x, MobileNetV3Small 9x, EfficientNetB0 13x slower, ResNet50 1-1.5x), Keras' "auto" elsewhere
    jit_compile: bool | str = field(default="auto", metadata=_choices("auto", "true", "false"))
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def load_config(path: str | os.PathLike | None = None, overrides: typing.Sequence[str] = ()) -> RecipeConfig:
    """Reads a YAML recipe (a file, or a packaged recipe by name; defaults when `path` is None) and applies
    `key=value` overrides."""
    raw: dict = {}
    source = "defaults"
    if path is not None:
        from kerascv_tl.recipe_catalog import packaged_recipes, recipe_path

        given, path = path, recipe_path(path)
        source = str(given)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            names = ", ".join(r.name for r in packaged_recipes())
            raise ConfigError(
                f"cannot read config {given}: {e.strerror or e} (not a file, and not a packaged recipe: {names})"
            ) from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override)
    return config_from_dict(raw, source=source)


def apply_override(raw: dict, override: str) -> None:
    """Applies one `section.key=value` override to a raw config dict; the value is parsed as YAML."""
    key, sep, value = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = parsed


def config_from_dict(raw: dict, source: str = "config") -> RecipeConfig:
    """A checked config: every key known and typed, every value in range, and every key the task does not
    use left at its default (`Task.check_config`); `train.monitor: auto` becomes the task's default monitor."""
    config = _build(RecipeConfig, raw, prefix="", source=source)
    check_values(config, source)
    from kerascv_tl.tasks.registry import get_task  # imports the task's module (TensorFlow) only now

    task = get_task(config.task)
    problems = task.check_config(config)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    if config.train.monitor == "auto":
        config.train.monitor = task.default_monitor
    return config


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}'; allowed keys in "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(fields)}"
        )
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, f"{prefix}{name}", source, fields[name].metadata)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str, source: str, metadata: typing.Mapping) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key, source, metadata)
            except ConfigError as e:
                errors.append(e)
        choices = metadata.get("choices")
        if choices:  # e.g. jit_compile (true, false or "auto"): name every allowed value, not the last type's
            raise ConfigError(f"{source}: {key} must be one of {', '.join(choices)}; got {value!r}")
        raise errors[-1]
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.", source=source)
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return {
            _coerce(key_type, k, f"{key} key", source, {}): _coerce(value_type, v, f"{key}[{k!r}]", source, {})
            for k, v in value.items()
        }
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list of {item.__name__}, got {value!r}")
        return [_coerce(item, v, f"{key}[{i}]", source, {}) for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        choices = metadata.get("choices")
        if callable(choices):
            choices = choices()
        if not isinstance(value, str):
            allowed = f"one of {', '.join(choices)}" if choices else "a string"
            raise ConfigError(f"{source}: {key} must be {allowed}, got {value!r}")
        value = expand_env(value)
        if choices and value not in choices:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(choices)}; got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str) -> str:
    """Expands `${VAR}` and `${VAR:-default}` (an unset or empty VAR takes the default)."""
    return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), text)
