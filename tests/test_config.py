"""Typed recipe config: YAML, `--set` overrides, key/type/choice errors, env expansion, YAML round trip."""

from __future__ import annotations

import re
import textwrap

import pytest
import yaml

from kerascv_tl.config import (
    ConfigError,
    PreprocessingConfig,
    RecipeConfig,
    apply_override,
    config_from_dict,
    expand_env,
    load_config,
)


def _write(tmp_path, text: str, name: str = "recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


RECIPE = """
    recipe: feature_extraction
    seed: 7
    data:
      train: /data/flowers/train
      image_size: 96
      augment:
        flip: true
        mixup_alpha: 0.2
    backbone:
      name: resnet50
      weights: none
    train:
      epochs: 12
      batch_size: 16
      learning_rate: 0.01
      optimizer: sgd
      unfreeze: 3
"""


def test_yaml_load_reaches_typed_fields(tmp_path):
    config = load_config(_write(tmp_path, RECIPE))
    assert isinstance(config, RecipeConfig)
    assert config.recipe == "feature_extraction"
    assert config.seed == 7
    assert config.data.train == "/data/flowers/train"
    assert config.data.image_size == 96
    assert config.data.augment.flip is True and config.data.augment.mixup_alpha == 0.2
    assert config.backbone.name == "resnet50" and config.backbone.weights == "none"
    assert config.train.epochs == 12 and config.train.batch_size == 16
    assert config.train.learning_rate == 0.01 and config.train.optimizer == "sgd"
    assert config.train.unfreeze == 3
    # Untouched keys keep their defaults.
    assert config.train.monitor == "val_accuracy"
    assert config.data.val is None
    assert config.backbone.preprocessing is None


def _loaded_defaults() -> RecipeConfig:
    """RecipeConfig() as loading resolves it: `train.monitor: auto` becomes the task's default monitor."""
    expected = RecipeConfig()
    assert expected.train.monitor == "auto"
    expected.train.monitor = "val_accuracy"
    return expected


def test_defaults_without_a_file():
    config = load_config(None)
    assert config.to_dict() == _loaded_defaults().to_dict()


def test_set_overrides_reach_typed_fields(tmp_path):
    path = _write(tmp_path, RECIPE)
    config = load_config(
        path, ["train.epochs=3", "data.augment.flip=false", "backbone.preprocessing.mean=[0.5,0.5,0.5]"]
    )
    assert config.train.epochs == 3 and isinstance(config.train.epochs, int)
    assert config.data.augment.flip is False
    # Overriding a key deep inside the file leaves its siblings as the file set them.
    assert config.data.augment.mixup_alpha == 0.2
    pre = config.backbone.preprocessing
    assert isinstance(pre, PreprocessingConfig)
    assert pre.mean == [0.5, 0.5, 0.5] and all(isinstance(v, float) for v in pre.mean)
    assert pre.std == [1.0, 1.0, 1.0] and pre.scale == 1.0  # the rest of the section: defaults
    assert config.backbone.name == "resnet50"


def test_overrides_apply_in_order_and_parse_yaml_values():
    config = load_config(None, ["train.epochs=3", "train.epochs=5", "data.val=null", "export.name=", "seed=0"])
    assert config.train.epochs == 5
    assert config.data.val is None and config.export.name is None
    assert config.seed == 0


def test_scientific_notation_is_a_number(tmp_path):
    # YAML 1.1 (PyYAML) reads `1e-4` (no dot) as a string; a learning rate must still accept it.
    config = load_config(_write(tmp_path, "train:\n  learning_rate: 1e-4\n"), ["train.fine_tune_learning_rate=2E-5"])
    assert config.train.learning_rate == pytest.approx(1e-4)
    assert config.train.fine_tune_learning_rate == pytest.approx(2e-5)
    with pytest.raises(ConfigError, match="train.learning_rate must be a number"):
        load_config(None, ["train.learning_rate=fast"])


@pytest.mark.parametrize("bad", ["train", "train.epochs", "=3", ""])
def test_override_without_equals_is_rejected(bad):
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, [bad])


def test_override_into_a_scalar_is_rejected():
    with pytest.raises(ConfigError, match="'seed' is not a section"):
        load_config(None, ["seed=3", "seed.value=3"])
    with pytest.raises(ConfigError, match="seed must be an integer"):
        load_config(None, ["seed.value=3"])


def test_unknown_key_names_full_dotted_key_and_lists_allowed(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(None, ["data.augment.flipp=true"])
    message = str(info.value)
    assert "'data.augment.flipp'" in message
    for allowed in ("random_resized_crop", "min_crop_area", "flip", "rand_augment", "mixup_alpha", "cutmix_alpha"):
        assert allowed in message
    # Same from a file, and at the top level.
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "train:\n  epoch: 3\n"))
    assert "'train.epoch'" in str(info.value) and "epochs" in str(info.value)
    assert str(tmp_path / "recipe.yaml") in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(None, ["trian.epochs=3"])
    assert "'trian'" in str(info.value)
    for section in ("recipe", "data", "backbone", "head", "train", "export"):
        assert section in str(info.value)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("train.epochs=abc", "train.epochs", "integer"),
        ("train.epochs=2.5", "train.epochs", "integer"),
        ("train.epochs=true", "train.epochs", "integer"),
        ("data.augment.flip=yes please", "data.augment.flip", "true or false"),
        ("train.learning_rate=[1]", "train.learning_rate", "number"),
        ("backbone.preprocessing.mean=0.5", "backbone.preprocessing.mean", "list"),
        ("backbone.preprocessing.mean=[0.5,x,0.5]", "backbone.preprocessing.mean[1]", "number"),
        ("backbone.name=3", "backbone.name", "string"),
        ("data.augment=3", "data.augment", "mapping"),
        ("data.max_image_pixels=lots", "data.max_image_pixels", "integer"),
        ("data.root=[a]", "data.root", "string"),
    ],
)
def test_wrong_type_names_the_key(override, key, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert key in message and expected in message


@pytest.mark.parametrize(
    "override, allowed",
    [
        ("recipe=transfer", ("feature_extraction", "fine_tune")),
        ("strategy=gpu", ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")),
        ("train.optimizer=rmsprop", ("adam", "adamw", "sgd")),
        ("data.format=parquet", ("auto", "folder", "csv", "tfds", "pennfudan", "masks")),
        ("task=keypoints", ("classification", "detection", "segmentation")),
        ("head.architecture=unet", ("auto", "deeplabv3", "segformer")),
        ("data.on_bad=ignore", ("skip", "fail")),
    ],
)
def test_choice_fields_list_allowed_values(override, allowed):
    key, _, value = override.partition("=")
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert key in message and repr(value) in message
    for choice in allowed:
        assert choice in message


def test_env_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWERS_DIR", "/mnt/flowers")
    monkeypatch.delenv("KCV_UNSET_VAR", raising=False)
    monkeypatch.setenv("KCV_EMPTY_VAR", "")
    path = _write(
        tmp_path,
        """
        data:
          train: ${FLOWERS_DIR}/train
          val: ${KCV_UNSET_VAR:-/default/val}
        output_dir: ${KCV_EMPTY_VAR:-runs_default}
        train:
          optimizer: ${KCV_UNSET_VAR:-adamw}
        """,
    )
    config = load_config(path, ["export.dir=${FLOWERS_DIR:-nope}/models"])
    assert config.data.train == "/mnt/flowers/train"
    assert config.data.val == "/default/val"
    assert config.output_dir == "runs_default"  # empty counts as unset
    assert config.train.optimizer == "adamw"  # choices are checked after expansion
    assert config.export.dir == "/mnt/flowers/models"
    assert expand_env("${KCV_UNSET_VAR}/x") == "/x"
    monkeypatch.setenv("KCV_OPT", "rmsprop")
    with pytest.raises(ConfigError, match="'rmsprop'"):
        load_config(None, ["train.optimizer=${KCV_OPT}"])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.unfreeze=all", "all"),
        ("train.unfreeze=2", 2),
        ("train.unfreeze=0", 0),
        ("train.unfreeze=block_13_expand", "block_13_expand"),
    ],
)
def test_unfreeze_accepts_all_count_or_layer_name(override, expected):
    value = load_config(None, [override]).train.unfreeze
    assert value == expected and type(value) is type(expected)


def test_unfreeze_rejects_negative_and_bool():
    with pytest.raises(ConfigError, match="train.unfreeze"):
        load_config(None, ["train.unfreeze=-1"])
    with pytest.raises(ConfigError, match="train.unfreeze"):
        load_config(None, ["train.unfreeze=true"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.image_size=16", "data.image_size"),
        ("train.batch_size=0", "train.batch_size"),
        ("data.max_image_pixels=0", "data.max_image_pixels"),
        ("head.dropout=1.0", "head.dropout"),
        ("train.learning_rate=0", "train.learning_rate"),
        ("backbone.preprocessing.mean=[0.5,0.5]", "mean/std need 3 values"),
        ("backbone.preprocessing.std=[1,0,1]", "std values must be positive"),
    ],
)
def test_value_ranges_are_checked(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(None, [override])


def test_invalid_yaml(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: [3\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_yaml_cannot_build_python_objects(tmp_path):
    path = _write(tmp_path, "seed: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML.*python/object/apply:os.system"):
        load_config(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")])
def test_non_mapping_file(tmp_path, text, kind):
    with pytest.raises(ConfigError, match=f"top level must be a mapping.*{kind}"):
        load_config(_write(tmp_path, text))


def test_empty_file_is_defaults(tmp_path):
    assert load_config(_write(tmp_path, "# nothing\n")).to_dict() == _loaded_defaults().to_dict()


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


def test_section_that_is_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="train must be a mapping"):
        load_config(_write(tmp_path, "train: 3\n"))


def test_to_yaml_round_trip(tmp_path):
    config = load_config(
        _write(tmp_path, RECIPE),
        [
            "backbone.preprocessing.mean=[0.485,0.456,0.406]",
            "backbone.preprocessing.scale=0.00392156862745098",
            "train.unfreeze=block_13_expand",
            "train.learning_rate=1e-5",
            "data.val=/data/flowers/val",
            "export.name=flowers",
        ],
    )
    text = config.to_yaml()
    assert isinstance(yaml.safe_load(text), dict)
    dumped = _write(tmp_path, text, "dumped.yaml")
    again = load_config(dumped)
    assert again.to_dict() == config.to_dict()
    assert again == config
    # Defaults round-trip too (None sections, "all").
    assert load_config(_write(tmp_path, RecipeConfig().to_yaml(), "defaults.yaml")) == _loaded_defaults()


def test_apply_override_and_config_from_dict_directly():
    raw: dict = {"train": {"epochs": 1}}
    apply_override(raw, "train.batch_size=4")
    apply_override(raw, "data.augment.flip=false")
    assert raw == {"train": {"epochs": 1, "batch_size": 4}, "data": {"augment": {"flip": False}}}
    config = config_from_dict(raw, source="inline")
    assert (config.train.epochs, config.train.batch_size, config.data.augment.flip) == (1, 4, False)
    with pytest.raises(ConfigError, match="^inline: "):
        config_from_dict({"bogus": 1}, source="inline")


def test_precision_and_jit_compile_defaults_and_overrides(tmp_path):
    config = load_config(None)
    assert (config.precision, config.jit_compile) == ("float32", "auto")
    config = load_config(None, ["precision=mixed_float16", "jit_compile=true"])
    assert (config.precision, config.jit_compile) == ("mixed_float16", True)
    assert load_config(None, ["precision=mixed_bfloat16", "jit_compile=false"]).jit_compile is False
    path = _write(tmp_path, "precision: mixed_bfloat16\njit_compile: auto\n")
    assert (load_config(path).precision, load_config(path).jit_compile) == ("mixed_bfloat16", "auto")
    assert load_config(_write(tmp_path, "jit_compile: false\n", "off.yaml")).jit_compile is False
    assert load_config(_write(tmp_path, config.to_yaml(), "dumped.yaml")) == config  # YAML round trip


@pytest.mark.parametrize(
    "override, allowed",
    [
        ("precision=float16", "float32, mixed_float16, mixed_bfloat16"),
        ("precision=true", "float32, mixed_float16, mixed_bfloat16"),
        ("jit_compile=maybe", "auto, true, false"),
        ("jit_compile=1", "auto, true, false"),
        ("jit_compile=[true]", "auto, true, false"),
    ],
)
def test_precision_and_jit_compile_errors_name_the_key_and_allowed_values(override, allowed):
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert f"{key} must be" in str(info.value) and allowed in str(info.value)


@pytest.mark.parametrize(
    "task, monitor", [("classification", "val_accuracy"), ("detection", "val_loss"), ("segmentation", "val_mean_iou")]
)
def test_monitor_auto_is_the_tasks_default_and_an_explicit_one_is_kept(task, monitor):
    assert load_config(None, [f"task={task}"]).train.monitor == monitor
    assert load_config(None, [f"task={task}", "train.monitor=val_loss"]).train.monitor == "val_loss"


@pytest.mark.parametrize(
    "task, key, value, why",
    [
        ("detection", "data.crop_fraction", "0.9", "letterboxes"),
        ("detection", "data.augment.mixup_alpha", "0.2", "not box-aware"),
        ("detection", "train.label_smoothing", "0.1", "focal loss"),
        ("segmentation", "head.dropout", "0.5", "no dropout"),
        ("segmentation", "export.top_k", "3", "classification"),
        ("classification", "data.max_boxes", "10", "detection"),
        ("classification", "head.architecture", "segformer", "segmentation"),
    ],
)
def test_a_key_the_task_does_not_use_is_refused_naming_key_and_task(task, key, value, why):
    with pytest.raises(ConfigError, match=rf"{re.escape(key)} is not used by {task} \(.*{why}"):
        load_config(None, [f"task={task}", f"{key}={value}"])


def test_keys_left_at_their_defaults_are_fine_for_every_task():
    for task in ("classification", "detection", "segmentation"):
        assert load_config(None, [f"task={task}"]).task == task
