"""The runtimes behind `load_predictor`: a SavedModel's `serving_default`, or a LiteRT / ONNX pixel graph with the
task's own prepare and finish (`kerascv_tl.export.steps`) run around it.

Each runtime maps a list of encoded images to the serving outputs (numpy, batch first) that the task's
`prediction_rows` reads, so the predictor does not know which format it runs. An image the decoder refuses
raises tf.errors.InvalidArgumentError, as the SavedModel's graph does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LiteRTRuntime", "OnnxRuntime", "PortableServing", "SavedModelServing", "runtime_threads"]

DEPLOY_EXTRA = "pip install 'kerascv-tl[deploy]'"


def runtime_threads() -> int:
    """Threads for the LiteRT and ONNX runtimes: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class SavedModelServing:
    """Encoded images -> outputs through a loaded SavedModel's `serving_default`."""

    def __init__(self, loaded: Any):
        self.loaded = loaded  # the signature needs the loaded object kept alive
        self.signature = loaded.signatures["serving_default"]

    def __call__(self, encoded: Sequence[bytes]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        return {k: v.numpy() for k, v in self.signature(image_bytes=tf.constant(list(encoded))).items()}


class LiteRTRuntime:
    """A .tflite pixel graph in ai-edge-litert's interpreter (XNNPACK on CPU): pixels -> raw outputs, with the
    input quantized and the outputs dequantized where the file says so."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ImportError(f"running a .tflite file needs ai-edge-litert: {DEPLOY_EXTRA}") from error
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads or runtime_threads())
        self.runner = self.interpreter.get_signature_runner()
        self.inputs = self.runner.get_input_details()
        self.outputs = self.runner.get_output_details()

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        feed = {name: _to_input(pixels, detail) for name, detail in self.inputs.items()}
        results = self.runner(**feed)
        return {name: _dequantize(value, self.outputs[name]) for name, value in results.items()}


class OnnxRuntime:
    """An .onnx pixel graph in ONNX Runtime's CPU provider: pixels -> raw outputs."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(f"running an .onnx file needs onnxruntime: {DEPLOY_EXTRA}") from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads or runtime_threads()
        options.log_severity_level = 3  # errors only: its graph-optimiser notes are not the user's business
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        (self.input,) = self.session.get_inputs()
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        dtype = np.uint8 if self.input.type == "tensor(uint8)" else np.float32
        values = self.session.run(self.output_names, {self.input.name: pixels.astype(dtype)})
        return dict(zip(self.output_names, values))


class PortableServing:
    """Encoded images -> outputs: decode and `prepare` each image, the pixel graph on the batch, `finish`; the same
    functions as the SavedModel's graph (`ServingSteps`), each traced once into a `tf.function` (run op by op, the
    preparing and the post-processing took several times the network's own time)."""

    def __init__(self, runtime: Any, steps: Any):
        import tensorflow as tf

        from kerascv_tl.data.decode import decode_image

        self.runtime = runtime
        self.steps = steps
        self._prepare_one = tf.function(
            lambda data: steps.prepare(decode_image(data)), input_signature=[tf.TensorSpec([], tf.string)]
        )
        self._finish = None  # traced on the first batch, for any batch size (see `_finished`)

    def prepare(self, encoded: Sequence[bytes]) -> dict:
        """The prepared batch (tensors) for encoded images; raises InvalidArgumentError for an undecodable one."""
        import tensorflow as tf

        from kerascv_tl.data.decode import decode_image

        try:
            prepared = [self._prepare_one(tf.constant(data)) for data in encoded]
        except tf.errors.InvalidArgumentError:
            # Again op by op, so that the error raised carries the decoder's own message, not the graph's.
            prepared = [self.steps.prepare(decode_image(tf.constant(data))) for data in encoded]
        return {key: tf.stack([p[key] for p in prepared]) for key in prepared[0]}

    def serve_prepared(self, prepared: dict) -> dict[str, np.ndarray]:
        """A prepared batch -> outputs: its pixels rounded to uint8, the runtime, `finish`."""
        import tensorflow as tf

        from kerascv_tl.export.steps import pixels_to_uint8

        raw = self.runtime(pixels_to_uint8(prepared["pixels"]).numpy())
        outputs = self._finished({k: tf.constant(v) for k, v in raw.items()}, prepared)
        return {k: v.numpy() for k, v in outputs.items()}

    def _finished(self, raw: dict, prepared: dict) -> dict:
        import tensorflow as tf

        if self._finish is None:
            # One trace with the batch dimension left open: a last, smaller batch does not trace again.
            spec = tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), [raw, prepared])
            self._finish = tf.function(self.steps.finish, input_signature=spec)
        return self._finish(raw, prepared)

    def __call__(self, encoded: Sequence[bytes]) -> dict[str, np.ndarray]:
        return self.serve_prepared(self.prepare(encoded))


def _to_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if np.issubdtype(dtype, np.integer) and scale and (scale, zero_point) != (1.0, 0):
        info = np.iinfo(dtype)
        return np.clip(np.round(pixels.astype(np.float32) / scale + zero_point), info.min, info.max).astype(dtype)
    return pixels.astype(dtype)


def _dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if np.issubdtype(value.dtype, np.integer) and scale:
        return (value.astype(np.float32) - zero_point) * scale
    return value
