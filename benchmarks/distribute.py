"""Training throughput on one device vs `mirrored` on two, and on a GPU when there is one.

The CPU is split into two logical devices before TensorFlow starts; both sides fine-tune the same
MobileNetV2 (random weights, every layer trainable) on the same in-memory batches with the same global
batch, alternating side by side, and the median images/s over the repeats is reported. On these 2-core
machines two logical devices share the same cores, so the point of the CPU figure is that `mirrored`
works and what its overhead is, not a speed-up. With a GPU, ResNet50 fine-tuning images/s at 224 px is
measured in float32 and mixed_float16.

    python benchmarks/distribute.py [--repeats 3] [--steps 6] [--image-size 96] [--batch-size 32]

Prints the figures and writes benchmarks/results/distribute.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerascv_tl.tasks import classifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _data(image_size: int, batch_size: int, steps: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size * steps, image_size, image_size, 3)).astype(np.float32)
    labels = keras.utils.to_categorical(rng.integers(0, 5, batch_size * steps), 5).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).cache()


def _model(strategy, backbone: str, image_size: int, precision: str = "float32") -> keras.Model:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = classifier(backbone, 5, weights="none", image_size=image_size, dropout=0.0)
            model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy", jit_compile=False)
    finally:
        keras.config.set_dtype_policy(previous)
    return model


def _images_per_second(model: keras.Model, data: tf.data.Dataset, images: int) -> float:
    started = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    images = args.steps * args.batch_size
    data = _data(args.image_size, args.batch_size, args.steps)
    sides = {
        "one_device": tf.distribute.get_strategy(),
        "mirrored_2_cpu": tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")]),
    }
    models = {name: _model(strategy, "mobilenet_v2", args.image_size) for name, strategy in sides.items()}
    for model in models.values():
        model.fit(data.take(2), epochs=1, verbose=0)  # trace and warm up outside the timing
    rates = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, model in models.items():
            rates[name].append(_images_per_second(model, data, images))
    result = {
        "machine": f"{platform.node()} ({os.cpu_count()} CPU cores, {platform.processor() or platform.machine()})",
        "tensorflow": tf.__version__,
        "setup": f"MobileNetV2 fine-tuning, random weights, {args.image_size} px, global batch {args.batch_size}, "
        f"{args.steps} steps per repeat, median of {args.repeats}",
        "images_per_s": {name: round(statistics.median(values), 1) for name, values in rates.items()},
    }
    result["mirrored_over_one_device"] = round(
        result["images_per_s"]["mirrored_2_cpu"] / result["images_per_s"]["one_device"], 3
    )
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        gpu_data = _data(224, 32, args.steps)
        result["gpu"] = {
            "device": tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0]).get(
                "device_name", gpus[0].name
            )
        }
        for precision in ("float32", "mixed_float16"):
            with tf.device(gpus[0].name):
                model = _model(tf.distribute.OneDeviceStrategy(gpus[0].name), "resnet50", 224, precision)
                model.fit(gpu_data.take(2), epochs=1, verbose=0)
                values = [_images_per_second(model, gpu_data, 32 * args.steps) for _ in range(args.repeats)]
            result["gpu"][f"resnet50_224px_{precision}_images_per_s"] = round(statistics.median(values), 1)
    else:
        result["gpu"] = "no GPU on this machine"
    out = ROOT / "benchmarks" / "results" / "distribute.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
