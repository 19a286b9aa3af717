"""LiteRT (.tflite) and ONNX exports: the task's network on prepared pixels, written with Keras' own exporters.

Neither format can decode image bytes, and NMS or per-image resizing are not portable ops, so these graphs hold
the `network` part of the task's `ServingSteps` only: they take pixels already prepared to the model's input
size (uint8 RGB [batch, S, S, 3] by default; float32 in [0, 255] with `input_dtype="float32"`; centre-cropped for
classification, letterboxed for detection, stretched for segmentation) and return the raw outputs the steps
document (`raw_doc`). Normalisation is inside. `kerascv_tl.load_predictor` runs the same prepare and finish as
the SavedModel around them. Each artefact gets a sidecar `<stem>.json`, the model card with an `export` section
saying all this and the details its prepare and finish are rebuilt from, and the same card in Markdown `<stem>.md`.

Conversion goes through `keras.Model.export(format="litert"|"onnx")` (Keras' ExportArchive -> TFLiteConverter,
and tf2onnx) on a small wrapper model whose input is the pixel tensor. LiteRT graphs use builtin ops only (no
Flex delegate needed on a phone); full-integer int8 calibrates on representative prepared images and keeps
float kernels only where an op has no int8 one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.export.card import portable_card
from kerascv_tl.export.card_markdown import render_model_card
from kerascv_tl.export.steps import NetworkFn, ServingSteps
from kerascv_tl.utils.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["PixelModel", "litert_file_stem", "read_sidecar", "write_litert", "write_onnx"]

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
PIXELS = "pixels"  # the input's name in both formats


class PixelModel(keras.Model):
    """pixels [B, S, S, 3] (uint8 or float32, [0, 255]) -> the task network's raw outputs, a dict of float32."""

    def __init__(self, model: keras.Model, network: NetworkFn, **kwargs):
        super().__init__(**kwargs)
        self.task_model = model  # tracked: its variables are this model's
        self.network = network

    def call(self, pixels):
        return self.network(keras.ops.cast(pixels, "float32"))


def _pixel_model(model: keras.Model, network: NetworkFn, size: int, input_dtype: str) -> tuple[PixelModel, list]:
    wrapper = PixelModel(model, network, name=f"{model.name}_pixels")
    wrapper(np.zeros((1, size, size, 3), input_dtype))  # built: ExportArchive refuses unbuilt layers
    return wrapper, [tf.TensorSpec([None, size, size, 3], tf.as_dtype(input_dtype), name=PIXELS)]


def litert_file_stem(name: str, quantize: str, input_dtype: str = "uint8", output_dtype: str = "float32") -> str:
    """`<name>_<float32|float16|dynamic|int8>` plus `_float32-input` / `_uint8-output` where not the defaults."""
    stem = f"{name}_{'float32' if quantize == 'none' else quantize}"
    if input_dtype != "uint8":
        stem += f"_{input_dtype}-input"
    if output_dtype != "float32":
        stem += f"_{output_dtype}-output"
    return stem


def _converter_options(quantize: str, batches: list[np.ndarray] | None, output_dtype: str) -> dict:
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS
    if quantize == "none":
        return {"target_spec": {"supported_ops": [builtins]}}
    options = {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_ops": [builtins]}}
    if quantize == "float16":
        options["target_spec"]["supported_types"] = [tf.float16]
    elif quantize == "int8":
        if not batches:
            raise ValueError("int8 quantization needs at least one calibration image; none could be read")
        options["representative_dataset"] = lambda: ({PIXELS: batch} for batch in batches)
        options["target_spec"]["supported_ops"] = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, builtins]
        if output_dtype == "uint8":
            options["inference_output_type"] = tf.uint8
    elif quantize != "dynamic":
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZATIONS)}; got {quantize!r}")
    return options


@contextlib.contextmanager
def _quiet():
    """The converters print pages of progress (MLIR passes, tf2onnx's optimisers) on stdout, and two warnings
    that have no cause here: TensorFlow's int8 calibrator runs the deprecated tf.lite.Interpreter inside the
    converter (predictions use ai-edge-litert's), and Keras' tf2onnx patch tests a NumPy alias NumPy 2 warns on."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*`np\.object`", category=FutureWarning)
        yield buffer


def write_litert(
    model: keras.Model,
    steps: ServingSteps,
    network: NetworkFn,
    path: str | Path,
    card: dict,
    class_names: Sequence[str],
    quantize: str = "none",
    calibration: Iterable[np.ndarray] | None = None,
    input_dtype: str = "uint8",
    output_dtype: str = "float32",
) -> Path:
    """Writes `path` (.tflite) and its sidecar card `<stem>.json`, each atomically; returns the .tflite path.

    `calibration`: for int8, uint8 (or float32) pixel batches [1, S, S, 3] prepared like serving inputs.
    """
    path = Path(path)
    if output_dtype == "uint8" and quantize != "int8":
        raise ValueError("uint8 outputs need quantize='int8' (only an int8 model has quantized outputs)")
    wrapper, signature = _pixel_model(model, network, steps.image_size, input_dtype)
    batches = list(calibration) if quantize == "int8" and calibration is not None else None
    options = _converter_options(quantize, batches, output_dtype)
    with atomic_path(path, suffix=".tflite") as tmp, _quiet():
        wrapper.export(str(tmp), format="litert", input_signature=signature, verbose=False, **options)
    quantization = {
        "none": "none (float32)",
        "float16": "float16 weights (computed in float32 where no float16 kernel runs)",
        "dynamic": "dynamic range: int8 weights, activations quantized on the fly",
        "int8": f"full integer: int8 weights and activations calibrated on {len(batches or [])} training "
        "images; ops without an int8 kernel stay float32",
    }[quantize]
    section = _portable_section("litert", steps, input_dtype, output_dtype, quantization)
    section["quantize"] = quantize
    if output_dtype == "uint8":
        section["output_quantization"] = _output_quantization(path)
    _write_sidecar(path, card, class_names, section)
    return path


def write_onnx(
    model: keras.Model,
    steps: ServingSteps,
    network: NetworkFn,
    path: str | Path,
    card: dict,
    class_names: Sequence[str],
    input_dtype: str = "uint8",
) -> Path:
    """Writes `path` (.onnx, through tf2onnx) and its sidecar card `<stem>.json`; returns the .onnx path."""
    path = Path(path)
    wrapper, signature = _pixel_model(model, network, steps.image_size, input_dtype)
    with atomic_path(path, suffix=".onnx") as tmp, _quiet():
        wrapper.export(str(tmp), format="onnx", input_signature=signature, verbose=False)
    section = _portable_section("onnx", steps, input_dtype, "float32", "none (float32)")
    section["opset"] = _onnx_opset(path)
    _write_sidecar(path, card, class_names, section)
    return path


def _output_quantization(path: Path) -> dict:
    """{output: {"scale", "zero_point"}}: real value = scale * (stored - zero_point)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_signature_runner().get_output_details()
    return {
        name: {"scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1])}
        for name, d in details.items()
    }


def _onnx_opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _portable_section(fmt: str, steps: ServingSteps, input_dtype: str, output_dtype: str, quantization: str) -> dict:
    size = steps.image_size
    return {
        **steps.details,
        "format": fmt,
        "input": {
            "name": PIXELS,
            "dtype": input_dtype,
            "shape": ["batch", size, size, 3],
            "meaning": f"RGB pixels in [0, 255] at {size}x{size}, prepared as the details say (resize / crop / "
            "letterbox); normalisation is inside the model",
        },
        "outputs": {
            name: doc + ("; quantized uint8" if output_dtype == "uint8" else "") for name, doc in steps.raw_doc.items()
        },
        "output_dtype": output_dtype,
        "quantization": quantization,
        "postprocessing": "kerascv_tl.load_predictor(this file) runs the SavedModel's decoding, resizing and "
        "post-processing around it",
    }


def _write_sidecar(path: Path, card: dict, class_names: Sequence[str], section: dict) -> Path:
    sidecar = path.with_suffix(".json")
    card = dict(card or {})
    card["export"] = {**section, "file": path.name, "bytes": os.path.getsize(path)}
    card.setdefault("labels", list(class_names))
    card = portable_card(card)
    atomic_write_json(sidecar, card)
    atomic_write_text(path.with_suffix(".md"), render_model_card(card))
    return sidecar


def read_sidecar(path: str | Path) -> dict:
    """The card beside a .tflite / .onnx file (`<stem>.json`)."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        raise FileNotFoundError(
            f"{sidecar}: not found; a {Path(path).suffix} export's card (task, labels, input "
            "size and post-processing details) is read from it"
        )
    return json.loads(sidecar.read_text())
