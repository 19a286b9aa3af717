"""Does the input pipeline make training wait? Real JPEG pipeline vs the same batch already in memory.

flowers5, ImageNet MobileNetV2 at 224 px, batch 32, augmentation on (random resized crop + flip), the
fine-tune recipe's model (top 6 blocks trainable). Side "pipeline": `training_epochs` exactly as the recipes
use it (read and decode JPEGs, shrink, crop, batch, augment, prefetch) with `data.cache` as given. Side
"memory": one batch from that pipeline, repeated from memory. Both sides alternate in one process; the
figure is median step time (seconds between batch ends, input waits included) of pipeline over memory.

    python benchmarks/input_pipeline.py [--steps 10] [--repeats 3] [--cache]
"""

from __future__ import annotations

import argparse

import keras  # noqa: E402  (after common: it sets TF's log level)
import tensorflow as tf  # noqa: E402
from common import StepTimer, assets, median, mobilenet_v2_weights, write_result

from kerascv_tl.config import load_config  # noqa: E402
from kerascv_tl.data.pipeline import training_epochs  # noqa: E402
from kerascv_tl.data.readers import folder_source  # noqa: E402
from kerascv_tl.tasks import classifier, unfreeze_backbone  # noqa: E402
from kerascv_tl.tasks.classification import compile_classifier  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat and side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache", action="store_true", help="data.cache: keep decoded images in memory")
    args = parser.parse_args()

    config = load_config(
        None,
        [
            f"data.image_size={args.image_size}",
            f"train.batch_size={args.batch_size}",
            f"data.cache={str(args.cache).lower()}",
        ],
    )
    source = folder_source(assets() / "flowers5" / "train")
    keras.utils.set_random_seed(0)
    model = classifier(
        "mobilenet_v2", source.num_classes, weights=str(mobilenet_v2_weights()), image_size=args.image_size
    )
    unfreeze_backbone(model, top_blocks=6)
    compile_classifier(model, config.train, 1e-4, source.num_classes)
    epochs = training_epochs(source, config.data, args.batch_size, seed=0)
    in_memory = tf.data.Dataset.from_tensors(next(iter(epochs.make(0)))).repeat()

    warm = args.steps + 2  # dropped from each repeat: the first batches fill the prefetch buffers
    model.fit(in_memory, steps_per_epoch=3, verbose=0)  # traces the train step once for both sides
    sides = {"pipeline": [], "memory": []}
    for repeat in range(args.repeats):
        for side in sides:
            data = epochs.make(repeat + 1).repeat() if side == "pipeline" else in_memory
            timer = StepTimer(skip=2)
            model.fit(data, steps_per_epoch=warm, verbose=0, callbacks=[timer])
            sides[side].append(median(timer.steady))
            print(f"repeat {repeat + 1} {side:8s} median step {sides[side][-1] * 1000:7.1f} ms")
    pipeline_s, memory_s = median(sides["pipeline"]), median(sides["memory"])
    ratio = pipeline_s / memory_s
    print(
        f"step time: real JPEG pipeline {pipeline_s * 1000:.1f} ms, in memory {memory_s * 1000:.1f} ms, "
        f"ratio {ratio:.3f} (goal <= 1.05)"
    )
    write_result(
        "input_pipeline_cached" if args.cache else "input_pipeline",
        {
            "setup": f"flowers5, MobileNetV2 ImageNet (top 6 blocks trainable), {args.image_size} px, batch "
            f"{args.batch_size}, random resized crop + flip, data.cache={args.cache}",
            "steps_per_repeat": args.steps,
            "repeats": args.repeats,
            "pipeline_step_s": round(pipeline_s, 4),
            "memory_step_s": round(memory_s, 4),
            "pipeline_steps_s_per_repeat": [round(x, 4) for x in sides["pipeline"]],
            "memory_steps_s_per_repeat": [round(x, 4) for x in sides["memory"]],
            "ratio": round(ratio, 3),
            "goal": "<= 1.05",
        },
    )


if __name__ == "__main__":
    main()
