"""Which weights each compared backbone gets on this machine, without downloading anything.

The config's own backbone keeps the config's `backbone.weights` (and preprocessing); `--weights NAME=SPEC`
names any other backbone's; the rest use ImageNet weights only when they are already on disk: Keras' cache
for keras.applications nets, KerasHub's (kagglehub's) cache for KerasHub presets. A backbone left with no
weights is probed from a seeded random initialisation only when random weights are allowed.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kerascv_tl.backbones import (
    REGISTRY,
    Backbone,
    backbone_from_config,
    build_backbone,
    get_backbone_spec,
)
from kerascv_tl.backbones.weights import NO_WEIGHTS, is_preset_handle, keras_cache_dir
from kerascv_tl.config import ConfigError

if TYPE_CHECKING:
    from kerascv_tl.config import RecipeConfig

RANDOM = "random"
UNAVAILABLE = "unavailable"


class NotCached(Exception):
    """A Keras application asked for a weights file that is not in Keras' cache (nothing was downloaded)."""


@dataclass
class Resolved:
    """A backbone built with the weights it gets here, or None with the reason it has none."""

    name: str
    backbone: Backbone | None
    weights: str  # a description of the weights, RANDOM or UNAVAILABLE
    note: str = ""

    @property
    def random(self) -> bool:
        return self.weights == RANDOM


def parse_weights_options(items: list[str]) -> dict[str, str]:
    """`--weights NAME=SPEC` options -> {name: spec}; a malformed item is a ConfigError."""
    weights = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ConfigError(f"--weights {item!r}: expected NAME=SPEC, e.g. resnet50=path/to/file.weights.h5")
        if is_preset_handle(spec):
            raise ConfigError(f"--weights {item!r}: compare downloads nothing; give a local preset folder or file")
        weights[name.strip()] = spec.strip()
    return weights


def check_names(names: list[str], config: RecipeConfig, weights: dict[str, str]) -> None:
    """Every name is a registry backbone or the config's own backbone; `--weights` names only compared ones."""
    known = set(REGISTRY) | {config.backbone.name}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"unknown backbone(s) {', '.join(unknown)}; registered: {', '.join(REGISTRY)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--backbones names a backbone twice: {','.join(names)}")
    stray = sorted(set(weights) - set(names))
    if stray:
        raise ConfigError(f"--weights names {', '.join(stray)}, which is not among the compared backbones")


def resolve(name: str, config: RecipeConfig, weights: dict[str, str], allow_random: bool) -> Resolved:
    """`name` built at the config's image size with the weights it can have here (see the module docstring)."""
    size = config.data.image_size
    own = name == config.backbone.name and name not in weights
    spec = weights.get(name, config.backbone.weights if own else "imagenet")
    if spec in NO_WEIGHTS:
        if not allow_random:
            return Resolved(name, None, UNAVAILABLE, f"weights {spec or 'none'}: random (--allow-random probes it)")
        return Resolved(name, _build(name, config, spec, own, size), RANDOM)
    if spec == "imagenet" and name in REGISTRY and get_backbone_spec(name).source == "keras_hub":
        preset = get_backbone_spec(name).imagenet_preset
        found = _cached_hub_preset(preset)
        if found is None:
            why = f"KerasHub preset {preset} is not cached here" if preset else "KerasHub has no ImageNet preset for it"
            return _no_weights(name, config, own, allow_random, f"{why} (--weights {name}=DIR)")
        spec = str(found)
    try:
        with offline_keras_applications():
            backbone = _build(name, config, spec, own, size)
    except NotCached as e:
        return _no_weights(name, config, own, allow_random, f"{e} is not in Keras' cache {keras_cache_dir()}")
    if backbone.weights_source.get("kind") == "none":  # the config's fallback_to_random kicked in
        if not allow_random:
            return Resolved(name, None, UNAVAILABLE, f"weights {spec} not found")
        return Resolved(name, backbone, RANDOM, f"weights {spec} not found")
    return Resolved(name, backbone, describe(backbone.weights_source))


def _no_weights(name: str, config: RecipeConfig, own: bool, allow_random: bool, why: str) -> Resolved:
    if not allow_random:
        return Resolved(name, None, UNAVAILABLE, why)
    return Resolved(name, _build(name, config, "none", own, config.data.image_size), RANDOM, why)


def _build(name: str, config: RecipeConfig, spec: str | None, own: bool, size: int) -> Backbone:
    if own and spec == config.backbone.weights:  # with the config's preprocessing override and fallback
        return backbone_from_config(config)
    return build_backbone(name, spec, size)


def describe(source: dict) -> str:
    """A short description of a backbone's weights provenance (`Backbone.weights_source`)."""
    kind = source.get("kind")
    if kind == "file":
        return f"file {Path(source['path']).name}"
    if kind == "imagenet":
        return "imagenet (Keras cache)"
    if kind == "preset":
        return f"preset {source.get('handle', '')}"
    return RANDOM if kind == "none" else str(kind)


@contextlib.contextmanager
def offline_keras_applications():
    """Inside, a keras.applications net that wants a weights file missing from Keras' cache raises NotCached
    instead of downloading it (the nets fetch through `keras.src.utils.file_utils.get_file`)."""
    from keras.src.utils import file_utils

    original = file_utils.get_file

    def cached_only(fname=None, origin=None, *args, **kwargs):
        subdir = kwargs.get("cache_subdir", "datasets")
        if fname is None or not (keras_cache_dir().parent / subdir / fname).is_file():
            raise NotCached(fname or origin)
        return original(fname, origin, *args, **kwargs)

    file_utils.get_file = cached_only
    try:
        yield
    finally:
        file_utils.get_file = original


def _cached_hub_preset(preset: str | None) -> Path | None:
    """The newest kagglehub cache folder of a KerasHub preset (models/<owner>/<model>/keras/<preset>/<version>)."""
    if preset is None:
        return None
    root = Path(os.environ.get("KAGGLEHUB_CACHE") or Path.home() / ".cache" / "kagglehub").expanduser()
    found = sorted(
        (p.parent for p in root.glob(f"models/*/*/keras/{preset}/*/config.json")),
        key=lambda p: int(p.name) if p.name.isdigit() else -1,
    )
    return found[-1] if found else None
