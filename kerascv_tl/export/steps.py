"""A task's serving computation in three parts, shared by every export format and by the Python predictor.

    prepare   one decoded image (uint8 [H, W, 3]) -> {"pixels": float32 [S, S, 3] in [0, 255], per-image values}
    network   float32 pixels [B, S, S, 3] -> the raw outputs (probabilities, decoded boxes and class logits, logits)
    finish    raw outputs + the prepared batch -> the task's serving outputs (top-k, NMS and boxes in original
              pixels, class maps at the original size)

The SavedModel runs all three in its graph (`serving_archive`). A LiteRT or ONNX graph holds only `network`
(their graphs cannot decode JPEG bytes, and NMS / per-image resizing are not portable ops), taking the prepared
pixels as uint8; `load_predictor` on such a file runs `prepare` and `finish` (as tf.functions) around it. Both
paths call the same functions, so switching formats changes the runtime and nothing else. `prepare` and `finish` are
rebuilt from the export's `details` (recorded in every artefact's model card), `network` needs the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import tensorflow as tf

__all__ = ["NetworkFn", "ServingSteps", "pixels_to_uint8"]

NetworkFn = Callable[[tf.Tensor], dict]


@dataclass(frozen=True)
class ServingSteps:
    """What a task serves, minus the network: see the module docstring.

    `details` go into the model card's `export` section (and `prepare` / `finish` are rebuilt from them);
    `outputs_doc` lists the serving outputs; `raw_doc` names and explains the network's raw outputs, which are
    what the LiteRT and ONNX graphs return.
    """

    image_size: int
    prepare: Callable[[tf.Tensor], dict]
    prepared_spec: dict
    finish: Callable[[dict, dict], dict]
    details: dict
    outputs_doc: list[str]
    raw_doc: dict[str, str] = field(default_factory=dict)

    def serve(self, network: NetworkFn) -> Callable[[dict], dict]:
        """prepared batch -> serving outputs: the network on the prepared pixels, then `finish`."""
        return lambda prepared: self.finish(network(prepared["pixels"]), prepared)


def pixels_to_uint8(pixels: tf.Tensor) -> tf.Tensor:
    """Prepared float pixels in [0, 255] -> the uint8 a LiteRT / ONNX graph takes (rounded, clipped)."""
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)
