"""TF Serving's warm-up file: `assets.extra/tf_serving_warmup_requests` in a SavedModel version folder.

TF Serving reads that file when it loads a version and replays each request before it marks the version
available, so the first real requests do not pay for graph initialisation (kernel set-up, memory pools, the first
runs of the decoders). It is a TFRecord file of `tensorflow.serving.PredictionLog` protos; each one here is a
`predict_log` whose request calls `serving_default` with one encoded image in `image_bytes`. A warm-up request
that fails makes TF Serving refuse to load the version, so `write_versioned` runs every warm-up image through the
export's own `serving_default` before writing the file.

`tensorflow-serving-api` (the protos) is imported only inside these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

__all__ = [
    "MAX_WARMUP_REQUESTS",
    "WARMUP_FILE",
    "WarmupRequest",
    "read_warmup_requests",
    "synthetic_jpeg",
    "write_warmup_requests",
]

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"  # where TF Serving looks, in a version folder
MAX_WARMUP_REQUESTS = 16  # each is replayed at every model load; a few are enough to warm every code path


@dataclass(frozen=True)
class WarmupRequest:
    """One warm-up request as read back: the signature it calls and its inputs (input name -> encoded images)."""

    signature_name: str
    inputs: dict[str, list[bytes]]


def synthetic_jpeg(height: int, width: int) -> bytes:
    """A smooth colour gradient (red across, green down, blue along the diagonal) as a JPEG of height x width."""
    if height < 1 or width < 1:
        raise ValueError(f"a warm-up image needs a positive size, got {height} x {width}")
    rows = np.linspace(0.0, 1.0, height)[:, None]
    cols = np.linspace(0.0, 1.0, width)[None, :]
    planes = [cols + 0.0 * rows, rows + 0.0 * cols, (rows + cols) / 2.0]
    pixels = np.round(np.stack(planes, axis=-1) * 255.0).astype(np.uint8)
    return tf.io.encode_jpeg(pixels, quality=90).numpy()


def write_warmup_requests(
    version_dir: str | Path,
    images: Sequence[bytes],
    signature_name: str = "serving_default",
    input_name: str = "image_bytes",
) -> Path:
    """Writes `version_dir/assets.extra/tf_serving_warmup_requests`: one PredictRequest per encoded image (a batch
    of one) to `signature_name`, input `input_name`. Returns the file's path."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    images = _checked(images)
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in images:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature_name
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string, shape=[1]))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir: str | Path) -> list[WarmupRequest]:
    """The predict requests of a version folder's warm-up file, in order ([] when it has none)."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(version_dir) / WARMUP_FILE
    if not path.is_file():
        return []
    requests = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") != "predict_log":
            continue
        request = log.predict_log.request
        inputs = {
            name: [bytes(v) for v in tf.make_ndarray(proto).reshape(-1)] for name, proto in request.inputs.items()
        }
        requests.append(WarmupRequest(request.model_spec.signature_name, inputs))
    return requests


def _checked(images: Sequence[bytes]) -> list[bytes]:
    images = list(images)
    if not images:
        raise ValueError("no warm-up images: give at least one, or None for the synthetic one")
    if len(images) > MAX_WARMUP_REQUESTS:
        raise ValueError(
            f"{len(images)} warm-up images, more than {MAX_WARMUP_REQUESTS}: TF Serving replays each at load"
        )
    for index, image in enumerate(images):
        if not isinstance(image, (bytes, bytearray)) or not image:
            raise ValueError(f"warmup_images[{index}] is not non-empty encoded image bytes")
    return [bytes(image) for image in images]
