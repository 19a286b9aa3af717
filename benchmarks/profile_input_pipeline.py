"""Where the training input pipeline's CPU time goes: per-stage cost on one thread, then whole-pipeline speed.

flowers5 (100 photos for the stages, the 500 training photos for the pipeline), 224 px, batch 32. Stage
costs are per image (the flip per batch of 32) in a traced function pinned to one thread, best of 3,
call overhead included in each. The pipeline figure is the steady-state time per batch of
`training_epochs` alone (no model), with and without `data.cache`, after its first 3 batches.

    python benchmarks/profile_input_pipeline.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import tensorflow as tf  # noqa: E402
from common import assets, median, write_result

from kerascv_tl.config import load_config  # noqa: E402
from kerascv_tl.data.decode import decode_image, exif_orientation  # noqa: E402
from kerascv_tl.data.pipeline import training_epochs  # noqa: E402
from kerascv_tl.data.readers import folder_source  # noqa: E402
from kerascv_tl.data.transforms import random_flip, random_resized_crop, shrink_for_training  # noqa: E402

SIZE = 224


def per_call_ms(fn, inputs) -> float:
    traced = tf.function(fn)
    traced(inputs[0])
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for x in inputs:
            traced(x)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / len(inputs)


def stages(source) -> dict:
    raw = [tf.io.read_file(p) for p in source.paths[:100]]
    images = [decode_image(r) for r in raw]
    shrunk = [shrink_for_training(im, SIZE, 0.875) for im in images]
    seed = tf.constant([1, 2], tf.int64)
    batch = tf.random.uniform([32, SIZE, SIZE, 3], 0, 255)
    import keras

    keras_flip = keras.layers.RandomFlip("horizontal", seed=0)
    costs = {
        "call_overhead": per_call_ms(tf.strings.length, raw),
        "exif_orientation": per_call_ms(exif_orientation, raw),
        "decode_image (JPEG + EXIF)": per_call_ms(decode_image, raw),
        "shrink_for_training": per_call_ms(lambda im: shrink_for_training(im, SIZE, 0.875), images),
        "resize antialiased (old crop)": per_call_ms(
            lambda im: tf.image.resize(tf.cast(im, tf.float32), (SIZE, SIZE), antialias=True), shrunk
        ),
        "random_resized_crop (antialias only when shrinking)": per_call_ms(
            lambda im: random_resized_crop(im, SIZE, 0.25, seed), shrunk
        ),
        "random_flip, uint8 source (now)": per_call_ms(lambda im: random_flip(im, seed), shrunk),
        "keras RandomFlip, float32 batch of 32 (before)": per_call_ms(
            lambda b: keras_flip(b, training=True), [batch] * 10
        ),
    }
    return {name: round(ms, 3) for name, ms in costs.items()}


def pipeline_ms_per_batch(source, cache: bool) -> float:
    config = load_config(None, [f"data.image_size={SIZE}", f"data.cache={str(cache).lower()}"])
    epochs = training_epochs(source, config.data, 32, seed=0)
    per_epoch = []
    for epoch in range(3):
        iterator = iter(epochs.make(epoch))
        for _ in range(3):
            next(iterator)
        started, count = time.perf_counter(), 0
        for _ in iterator:
            count += 1
        per_epoch.append(1000 * (time.perf_counter() - started) / count)
    return round(median(per_epoch), 1)


def main() -> None:
    source = folder_source(assets() / "flowers5" / "train")
    if "--stages" in sys.argv:  # the child: TensorFlow's thread pools are fixed once it starts, so before any op
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        print(json.dumps(stages(source)))
        return
    child = subprocess.run([sys.executable, __file__, "--stages"], capture_output=True, text=True, check=True)
    costs = json.loads(child.stdout.strip().splitlines()[-1])
    for name, ms in costs.items():
        print(f"{name:55s} {ms:7.2f} ms per call (one thread)")
    result = {
        "stage_ms_per_call_one_thread": costs,
        "pipeline_ms_per_batch": {
            "uncached": pipeline_ms_per_batch(source, False),
            "cached": pipeline_ms_per_batch(source, True),
        },
    }
    print(
        f"training_epochs alone (all cores), steady state: {result['pipeline_ms_per_batch']['uncached']} ms per "
        f"batch uncached, {result['pipeline_ms_per_batch']['cached']} ms cached"
    )
    write_result("profile_input_pipeline", result)


if __name__ == "__main__":
    main()
