"""What does serving from JPEG bytes cost? The exported SavedModel vs `model.predict` on decoded tensors.

For each task, one batch of 32 real photos: the SavedModel's `serving_default` gets the JPEG bytes (decode,
resize, network and, for detection, box decoding and NMS all in its graph); `model.predict` gets the same
photos already decoded and resized to the model's input (decoding and resizing done beforehand, untimed).
A third figure, the model's `predict_step` traced once and called on those tensors, is the floor under
both: the SavedModel's ratio to it is what decoding and resizing in the graph cost.
Classification: flowers5 validation JPEGs, MobileNetV2 224 px. Detection (RetinaNet) and segmentation
(DeepLabV3+): pennfudan photos re-encoded as JPEG (quality 90), MobileNetV2 backbone, 256 px, as in the
pennfudan recipes. ImageNet backbone, untrained heads: the figures are latency, not quality. The sides
alternate; figures are medians over repeats.

    python benchmarks/serving.py [--repeats 7] [--tasks classification,detection,segmentation]
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import alternate, assets, median, mobilenet_v2_weights, write_result
from PIL import Image  # noqa: E402

from kerascv_tl.data.decode import decode_image  # noqa: E402
from kerascv_tl.data.transforms import eval_transform  # noqa: E402
from kerascv_tl.export import export_classifier, export_detector, export_segmenter, load_serving  # noqa: E402

BATCH = 32


def flowers_jpegs() -> list[bytes]:
    paths = sorted((assets() / "flowers5" / "val").glob("*/*.jpg"))
    step = max(1, len(paths) // BATCH)
    return [p.read_bytes() for p in paths[::step][:BATCH]]


def pennfudan_jpegs() -> list[bytes]:
    result = []
    for path in sorted((assets() / "pennfudan" / "PNGImages").glob("*.png"))[:BATCH]:
        buffer = io.BytesIO()
        Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=90)
        result.append(buffer.getvalue())
    return result


def build(task: str, work: Path):
    """(model, export folder, JPEG bytes, decoded batch at the model's input size)."""
    weights = str(mobilenet_v2_weights())
    if task == "classification":
        import kerascv_tl

        size, jpegs = 224, flowers_jpegs()
        model = kerascv_tl.classifier("mobilenet_v2", 5, weights=weights, image_size=size)
        folder = export_classifier(model, [f"c{i}" for i in range(5)], work / task, crop_fraction=1.0)
        prepare = lambda im: eval_transform(im, size, 1.0)  # noqa: E731
    elif task == "detection":
        import kerascv_tl
        from kerascv_tl.data.transforms import resize_with_pad

        size, jpegs = 256, pennfudan_jpegs()
        model = kerascv_tl.detector("mobilenet_v2", 1, weights=weights, image_size=size)
        folder = export_detector(model, ["person"], work / task)
        model.prediction_decoder.confidence_threshold = 0.3  # the export's default threshold on both sides
        prepare = lambda im: resize_with_pad(im, size)[0]  # noqa: E731
    else:
        import kerascv_tl
        from kerascv_tl.data.transforms import resize_image

        size, jpegs = 256, pennfudan_jpegs()
        model = kerascv_tl.segmenter("mobilenet_v2", 2, weights=weights, image_size=size)
        folder = export_segmenter(model, ["background", "person"], work / task)
        prepare = lambda im: resize_image(im, size)  # noqa: E731
    decoded = np.stack([prepare(decode_image(tf.constant(b))).numpy() for b in jpegs])
    return model, folder, jpegs, decoded


def measure(task: str, repeats: int, work: Path) -> dict:
    model, folder, jpegs, decoded = build(task, work)
    serving, _ = load_serving(folder)
    serve = serving.signatures["serving_default"]
    image_bytes = tf.constant(jpegs)
    size = decoded.shape[1]
    # The network (and detection's box decoding + NMS) alone, in one traced function: the floor under both.
    # A fixed batch: KerasHub's NMS does not trace with an unknown one.
    predict_step = tf.function(model.predict_step, input_signature=[tf.TensorSpec([BATCH, size, size, 3], tf.float32)])
    decoded_tensor = tf.constant(decoded)
    calls = {
        "savedmodel_jpeg_bytes": lambda: serve(image_bytes=image_bytes),
        "keras_predict_decoded": lambda: model.predict(decoded, batch_size=BATCH, verbose=0),
        "traced_predict_step_decoded": lambda: predict_step(decoded_tensor),
    }
    times = alternate(calls, repeats, warmups=2)  # two untimed calls each: tracing and first-call allocation
    served, predicted = median(times["savedmodel_jpeg_bytes"]), median(times["keras_predict_decoded"])
    floor = median(times["traced_predict_step_decoded"])
    result = {
        "batch": BATCH,
        "repeats": repeats,
        "savedmodel_jpeg_bytes_s": round(served, 4),
        "keras_predict_decoded_s": round(predicted, 4),
        "traced_predict_step_decoded_s": round(floor, 4),
        "savedmodel_images_per_s": round(BATCH / served, 1),
        "keras_predict_images_per_s": round(BATCH / predicted, 1),
        "latency_ratio": round(served / predicted, 3),
        "latency_ratio_vs_traced_predict_step": round(served / floor, 3),
    }
    print(
        f"{task:14s} SavedModel from JPEG bytes {served * 1000:7.1f} ms ({BATCH / served:5.1f} img/s)   "
        f"model.predict on decoded {predicted * 1000:7.1f} ms ({BATCH / predicted:5.1f} img/s)   "
        f"ratio {served / predicted:.3f} (goal <= 1.15)   traced predict_step {floor * 1000:7.1f} ms "
        f"(ratio {served / floor:.3f})"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tasks", default="classification,detection,segmentation")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for task in args.tasks.split(","):
            results[task] = measure(task, args.repeats, Path(work))
            keras.backend.clear_session()
    write_result(
        "serving",
        {
            "setup": "batch of 32 photos; classification MobileNetV2 224 px (flowers5 JPEGs); detection RetinaNet and "
            "segmentation DeepLabV3+ on MobileNetV2 at 256 px (pennfudan photos as JPEG q90); ImageNet "
            "backbone, untrained heads",
            "goal": "latency ratio <= 1.15",
            **results,
        },
    )


if __name__ == "__main__":
    main()
