"""What does the recipe machinery cost? A recipe's training epochs vs a bare, hand-written `model.fit`.

Same compiled model (flowers5, ImageNet MobileNetV2, top 6 blocks trainable, 224 px, batch 32), same
training batches (`training_epochs`, as the recipes build them) and validation data. Side "recipe":
`fit_phase` as the fine-tune recipe calls it, in a fresh run folder: CSV log, best checkpoint, TensorBoard,
early stopping, BackupAndRestore with its exact-resume state, the phase's weights and done-marker.
Side "bare": `model.fit(train, validation_data=val, epochs=N)`. The sides alternate; the figure is
median wall time of recipe over bare.

    python benchmarks/framework_overhead.py [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import keras  # noqa: E402
from common import assets, median, mobilenet_v2_weights, write_result

from kerascv_tl.config import load_config  # noqa: E402
from kerascv_tl.data.pipeline import eval_dataset, training_epochs  # noqa: E402
from kerascv_tl.data.readers import folder_source  # noqa: E402
from kerascv_tl.run_folder import RunFolder  # noqa: E402
from kerascv_tl.tasks import classifier, unfreeze_backbone  # noqa: E402
from kerascv_tl.tasks.classification import compile_classifier  # noqa: E402
from kerascv_tl.training.fit import fit_phase  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per repeat and side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    config = load_config(
        None,
        [
            f"data.image_size={args.image_size}",
            f"train.batch_size={args.batch_size}",
            "data.cache=true",
            "data.crop_fraction=1.0",
            "train.monitor=val_accuracy",
            "train.early_stopping_patience=10",
        ],
    )
    train = folder_source(assets() / "flowers5" / "train")
    val = folder_source(assets() / "flowers5" / "val", class_names=train.class_names)
    keras.utils.set_random_seed(0)
    model = classifier(
        "mobilenet_v2", train.num_classes, weights=str(mobilenet_v2_weights()), image_size=args.image_size
    )
    unfreeze_backbone(model, top_blocks=6)
    compile_classifier(model, config.train, 1e-4, train.num_classes)
    train_data = training_epochs(train, config.data, args.batch_size, seed=0)
    val_data = eval_dataset(val, config.data, args.batch_size, cache=True)
    # One untimed epoch traces the train and test steps and fills both in-memory caches.
    model.fit(train_data.make(0), validation_data=val_data, epochs=1, verbose=0)

    sides = {"recipe": [], "bare": []}
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(args.repeats):
            for side in sides:
                started = time.perf_counter()
                if side == "recipe":
                    fit_phase(
                        RunFolder(f"{work}/run{repeat}"),
                        "fine_tune",
                        model,
                        train_data,
                        val_data,
                        args.epochs,
                        config.train,
                        verbose=0,
                    )
                else:
                    model.fit(
                        train_data.stream(0, args.epochs),
                        steps_per_epoch=train_data.steps,
                        validation_data=val_data,
                        epochs=args.epochs,
                        verbose=0,
                    )
                sides[side].append(time.perf_counter() - started)
                print(f"repeat {repeat + 1} {side:6s} {sides[side][-1]:6.1f} s for {args.epochs} epoch(s)")
    recipe_s, bare_s = median(sides["recipe"]), median(sides["bare"])
    ratio = recipe_s / bare_s
    print(
        f"{args.epochs} epoch(s): recipe {recipe_s:.1f} s, bare model.fit {bare_s:.1f} s, ratio {ratio:.3f} "
        f"(goal <= 1.03)"
    )
    write_result(
        "framework_overhead",
        {
            "setup": f"flowers5 (500 train / 200 val), MobileNetV2 ImageNet (top 6 blocks trainable), "
            f"{args.image_size} px, batch {args.batch_size}, data.cache=true, {args.epochs} epochs per side",
            "repeats": args.repeats,
            "recipe_s": round(recipe_s, 2),
            "bare_fit_s": round(bare_s, 2),
            "recipe_s_per_repeat": [round(x, 2) for x in sides["recipe"]],
            "bare_fit_s_per_repeat": [round(x, 2) for x in sides["bare"]],
            "ratio": round(ratio, 3),
            "goal": "<= 1.03",
        },
    )


if __name__ == "__main__":
    main()
