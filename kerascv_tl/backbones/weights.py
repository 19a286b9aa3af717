"""Resolving `weights=`: imagenet | none | a local .weights.h5/.keras file | a KerasHub preset.

Every path returns the built feature model plus a provenance record for the model card. Failures are
`WeightsError`s that say what was wanted and what to do, never a download traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import keras

from kerascv_tl.backbones.preprocessing import Preprocessing
from kerascv_tl.backbones.registry import BackboneSpec
from kerascv_tl.utils.io import sha256_file
from kerascv_tl.utils.model_files import load_keras_model

log = logging.getLogger(__name__)

NO_WEIGHTS = {None, "", "none", "random"}
DEFAULT_PRESET_IMAGE_SIZE = 224  # for size-agnostic presets when no image size is asked for
# How long one connection attempt may hang before an offline machine is declared offline.
_NETWORK_TIMEOUT_S = 5.0


class WeightsError(ValueError):
    """Weights could not be obtained or do not fit the backbone."""


@dataclass
class ResolvedWeights:
    model: keras.Model
    source: dict  # provenance for the model card
    preprocessing: Preprocessing | None = None  # from a sidecar JSON or a KerasHub preset


def keras_cache_dir() -> Path:
    """Where `keras.utils.get_file` keeps downloaded application weights.

    Mirrors `get_file`: Keras reads $KERAS_HOME once, at import, into its own config, and falls back to
    /tmp/.keras when that folder is not writable; reading the environment here again could name a folder
    Keras does not use.
    """
    try:
        from keras.src.backend.config import keras_home
    except ImportError:  # pragma: no cover - private module moved
        base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    else:
        base = keras_home()
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp", ".keras")
    return Path(base) / "models"


def is_preset_handle(value: str) -> bool:
    return "://" in value


def resolve_weights(
    spec: BackboneSpec, weights: str | None, image_size: int, fallback_to_random: bool = False
) -> ResolvedWeights:
    input_shape = (image_size, image_size, 3)
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)  # a pathlib.Path reaches the file checks and the error messages too
    if weights in NO_WEIGHTS:
        return ResolvedWeights(spec.builder(input_shape, None), {"kind": "none"})
    if weights == "imagenet":
        if spec.source == "keras_hub":
            if spec.imagenet_preset is None:
                raise WeightsError(
                    f"{spec.name} has no ImageNet preset in KerasHub; give a preset handle or a local preset folder "
                    "as weights"
                )
            return load_preset(spec.imagenet_preset, image_size)
        return _keras_imagenet(spec, input_shape)
    path = Path(weights).expanduser()
    if path.is_dir():
        return load_preset(str(path), image_size)
    if path.is_file():
        return _local_file(spec, path, input_shape)
    if is_preset_handle(weights):
        return load_preset(weights, image_size)
    if fallback_to_random:
        log.warning(
            "WARNING: weights file %s not found; %s starts from RANDOM initialisation. "
            "Expect much lower accuracy than with pretrained weights.",
            path,
            spec.name,
        )
        model = spec.builder(input_shape, None)
        return ResolvedWeights(model, {"kind": "none", "wanted": str(path), "reason": "file not found"})
    raise WeightsError(f"weights file {path} not found (backbone {spec.name}); use imagenet, none, a file or a preset")


@contextlib.contextmanager
def network_timeout(seconds: float = _NETWORK_TIMEOUT_S):
    """Bounds each connection attempt inside (a network that drops packets would otherwise hang a download)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _keras_imagenet(spec: BackboneSpec, input_shape) -> ResolvedWeights:
    # Keras' own path: keras.utils.get_file downloads into ~/.keras/models and checks the file's hash.
    # A socket timeout bounds the wait on a network that drops packets instead of refusing them.
    try:
        with network_timeout(_NETWORK_TIMEOUT_S):
            model = spec.builder(input_shape, "imagenet")
    except Exception as e:  # Keras raises a bare Exception for fetch failures
        match = re.search(r"(https?://\S+?)(?::\s|\s|$)", str(e))
        if "fetch failure" not in str(e) and match is None:
            raise
        url = match.group(1) if match else "(unknown URL)"
        filename = url.rsplit("/", 1)[-1]
        raise WeightsError(
            f"could not download ImageNet weights for {spec.name}: {_reason(e)}.\n"
            f"Keras wants the file {filename} from {url}.\n"
            f"Put the genuine file at {keras_cache_dir() / filename} (Keras checks its hash and deletes a "
            f"file that does not match), or set backbone.weights to a local .weights.h5 file or none."
        ) from None
    source = {"kind": "imagenet", "loader": f"keras.applications ({spec.name})", "cache_dir": str(keras_cache_dir())}
    return ResolvedWeights(model, source)


def _reason(error: Exception) -> str:
    text = str(error)
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return "no network (name resolution failed)"
    if "timed out" in text:
        return "no network (connection timed out)"
    return text.split(" -- ")[-1].strip() or "download failed"


def sidecar_preprocessing(path: Path) -> Preprocessing | None:
    """`<file>.preprocessing.json` or `preprocessing.json` beside a weights file."""
    stem = path.name[: -len(".weights.h5")] if path.name.endswith(".weights.h5") else path.stem
    for candidate in (path.with_name(f"{stem}.preprocessing.json"), path.with_name("preprocessing.json")):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise WeightsError(f"{candidate}: cannot read preprocessing sidecar: {e}") from None
            fields = {k: data[k] for k in ("scale", "mean", "std", "channel_order") if k in data}
            if not fields:
                raise WeightsError(f"{candidate}: preprocessing sidecar has none of scale, mean, std")
            return Preprocessing.from_dict(fields, source=f"sidecar {candidate}")
    return None


def _local_file(spec: BackboneSpec, path: Path, input_shape) -> ResolvedWeights:
    model = spec.builder(input_shape, None)
    source = {"kind": "file", "path": str(path.resolve()), "sha256": sha256_file(path)}
    if path.suffix == ".keras":
        loaded = load_keras_model(path)
        donor = _find_layer(loaded, "backbone") or loaded
        try:
            model.set_weights(donor.get_weights())
        except ValueError as e:
            raise WeightsError(f"{path}: its weights do not fit backbone {spec.name}: {e}") from None
    elif path.name.endswith(".h5"):
        try:
            model.load_weights(path)
        except (ValueError, KeyError) as e:
            raise WeightsError(
                f"{path}: cannot load into {spec.name} (include_top=False): {e}. "
                "Is it a weights file for this architecture without the classification top?"
            ) from None
    else:
        raise WeightsError(f"{path}: weights files must end in .weights.h5, .h5 or .keras")
    return ResolvedWeights(model, source, sidecar_preprocessing(path))


def _find_layer(model: keras.Model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


@contextlib.contextmanager
def preset_download(handle: str, family: str, then: str, error: type[WeightsError] = WeightsError):
    """Runs a KerasHub `from_preset` inside: a file or network failure becomes `error`, saying how to fetch the
    preset on a connected machine (`keras_hub.models.<family>...save_to_preset(DIR)`) and `then` what to do."""
    try:
        with network_timeout(_NETWORK_TIMEOUT_S):
            yield
    except (OSError, ConnectionError) as e:
        raise error(f"cannot load KerasHub preset {handle}: {e.__class__.__name__}: {str(e)[:300]}") from None
    except Exception as e:
        if "Connection" in type(e).__name__ or "resolve" in str(e):
            raise error(
                f"cannot download KerasHub preset {handle}: no network. Download it on a connected machine "
                f"(keras_hub.models.{family}.from_preset(...).save_to_preset(DIR)) and {then}."
            ) from None
        raise


def load_preset(handle: str, image_size: int | None) -> ResolvedWeights:
    """A KerasHub backbone preset: a kaggle:// or hf:// handle, a built-in preset name, or a local folder."""
    import keras_hub

    with preset_download(handle, "Backbone", "pass DIR as weights"):
        model = keras_hub.models.Backbone.from_preset(handle)
    shape = getattr(model, "image_shape", None)
    if (
        image_size is not None
        and shape is not None
        and shape[0] is not None
        and tuple(shape[:2]) != (image_size, image_size)
    ):
        raise WeightsError(f"preset {handle} expects {shape[0]}x{shape[1]} images; set data.image_size: {shape[0]}")
    if shape is not None and shape[0] is None:
        model = with_fixed_image_size(model, image_size or DEFAULT_PRESET_IMAGE_SIZE)
    source = {"kind": "preset", "handle": handle, "class": type(model).__name__}
    return ResolvedWeights(model, source, _preset_preprocessing(handle))


def with_fixed_image_size(model: keras.Model, image_size: int) -> keras.Model:
    """A size-agnostic preset (KerasHub ResNet is saved with image_shape (None, None, 3)) rebuilt at a fixed
    size, so its pyramid levels have static shapes the detection and segmentation heads can plan for."""
    config = {**model.get_config(), "image_shape": (image_size, image_size, 3)}
    fixed = type(model).from_config(config)
    fixed.set_weights(model.get_weights())
    return fixed


def _preset_preprocessing(handle: str) -> Preprocessing | None:
    import keras_hub

    try:
        converter = keras_hub.layers.ImageConverter.from_preset(handle)
    except Exception:  # backbone-only presets carry no image converter
        return None
    return converter_preprocessing(converter, f"KerasHub image converter of {handle}")


def converter_preprocessing(converter, source: str) -> Preprocessing | None:
    """A KerasHub `ImageConverter`'s pixel normalisation (x * scale + offset) as a `Preprocessing`; None when it
    has no scale."""
    scale, offset = converter.scale, converter.offset
    if scale is None:
        return None
    scales = [float(s) for s in (scale if isinstance(scale, (list, tuple)) else [scale] * 3)]
    offsets = [float(o) for o in (offset if isinstance(offset, (list, tuple)) else [offset or 0.0] * 3)]
    # x * s + o == (x * 1 - (-o / s)) / (1 / s)
    return Preprocessing(
        scale=1.0,
        mean=tuple(-o / s for o, s in zip(offsets, scales)),
        std=tuple(1.0 / s for s in scales),
        source=source,
    )
