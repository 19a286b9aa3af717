"""Cached-feature linear probe vs recomputing frozen features every epoch (flowers5, MobileNetV2, 224 px).

Both sides train the same head from the same initial weights for the same number of epochs on the
same un-augmented images (resize + centre crop), shuffled per example, validating every epoch; only
where the embeddings come from differs. The recompute side keeps decoded images in memory (so only the
backbone's forward pass is repeated); the cached side's time includes computing the cache from cold.

    python benchmarks/cached_features.py [--epochs 10] [--image-size 224]

Prints both wall times, the speed-up and both final validation accuracies, and writes
benchmarks/results/cached_features.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerascv_tl.config import load_config  # noqa: E402
from kerascv_tl.data.pipeline import eval_dataset, eval_images  # noqa: E402
from kerascv_tl.data.readers import folder_source  # noqa: E402
from kerascv_tl.tasks import classifier, feature_extractor, freeze_backbone, head_model  # noqa: E402
from kerascv_tl.tasks.classification import compile_classifier  # noqa: E402
from kerascv_tl.training.feature_cache import cached_embeddings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--assets", default=os.environ.get("KERASCV_TL_ASSETS", str(ROOT.parent / "shared" / "assets")))
    args = parser.parse_args()
    assets = Path(args.assets)
    weights = assets / "weights" / "mobilenet_v2_imagenet" / "mobilenet_v2_torchvision_ported_keras_notop.weights.h5"
    config = load_config(
        None,
        [
            f"data.image_size={args.image_size}",
            "data.crop_fraction=1.0",
            f"train.batch_size={args.batch_size}",
            "train.learning_rate=0.001",
        ],
    )
    train = folder_source(assets / "flowers5" / "train")
    val = folder_source(assets / "flowers5" / "val", class_names=train.class_names)

    keras.utils.set_random_seed(0)
    # A linear probe (no dropout) and the same seeded permutation of the 500 examples on both sides: the
    # head sees the same batches, so any accuracy gap would be the cache's doing.
    model = classifier("mobilenet_v2", train.num_classes, weights=str(weights), image_size=args.image_size, dropout=0.0)
    freeze_backbone(model)
    initial_head = [w.numpy() for w in model.get_layer("predictions").weights]

    def reset_head():
        for variable, value in zip(model.get_layer("predictions").weights, initial_head):
            variable.assign(value)
        keras.utils.set_random_seed(0)

    # Recompute: the frozen backbone runs over every image in every epoch.
    reset_head()
    compile_classifier(model, config.train, config.train.learning_rate, train.num_classes)
    # Decoded, resized images stay in memory after the first epoch, so what is repeated is the backbone.
    one_hot_image = lambda image, label: (image, tf.one_hot(label, train.num_classes))  # noqa: E731
    train_images = (
        eval_images(train, config.data).cache().shuffle(len(train), seed=0).map(one_hot_image).batch(args.batch_size)
    )
    val_images = eval_dataset(val, config.data, args.batch_size, cache=True)
    started = time.perf_counter()
    history = model.fit(train_images, validation_data=val_images, epochs=args.epochs, verbose=0)
    recompute_s = time.perf_counter() - started
    recompute_acc = history.history["val_accuracy"][-1]

    # Cached: embeddings computed once (from cold, timed), then the head trains on them.
    reset_head()
    head = head_model(model)
    compile_classifier(head, config.train, config.train.learning_rate, train.num_classes)
    with tempfile.TemporaryDirectory() as cache_dir:
        started = time.perf_counter()
        extractor = feature_extractor(model)
        x_train, y_train = cached_embeddings(extractor, train, config.data, cache_dir, "train", args.batch_size)
        x_val, y_val = cached_embeddings(extractor, val, config.data, cache_dir, "val", args.batch_size)
        cache_s = time.perf_counter() - started
        one_hot = lambda y: keras.utils.to_categorical(y, train.num_classes)  # noqa: E731
        train_ds = tf.data.Dataset.from_tensor_slices((x_train, one_hot(y_train))).shuffle(len(x_train), seed=0)
        val_ds = tf.data.Dataset.from_tensor_slices((x_val, one_hot(y_val))).batch(args.batch_size)
        history = head.fit(train_ds.batch(args.batch_size), validation_data=val_ds, epochs=args.epochs, verbose=0)
        cached_s = time.perf_counter() - started
    cached_acc = history.history["val_accuracy"][-1]

    result = {
        "benchmark": "cached_features",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__} (CPU)",
        "data": "flowers5 (500 train / 200 val), MobileNetV2 ImageNet, frozen",
        "image_size": args.image_size,
        "head_epochs": args.epochs,
        "recompute_wall_s": round(recompute_s, 2),
        "cached_wall_s": round(cached_s, 2),
        "of_which_building_cache_s": round(cache_s, 2),
        "speedup": round(recompute_s / cached_s, 2),
        "recompute_val_accuracy": round(float(recompute_acc), 4),
        "cached_val_accuracy": round(float(cached_acc), 4),
        "accuracy_difference_points": round(100 * abs(float(recompute_acc) - float(cached_acc)), 2),
    }
    print(f"recompute frozen features every epoch: {recompute_s:7.1f} s   val accuracy {recompute_acc:.4f}")
    print(
        f"cached features (cache built cold):    {cached_s:7.1f} s   val accuracy {cached_acc:.4f}"
        f"   (building the cache: {cache_s:.1f} s)"
    )
    print(
        f"speed-up: {result['speedup']:.1f}x   accuracy difference: {result['accuracy_difference_points']:.2f} points"
    )
    out = ROOT / "benchmarks" / "results" / "cached_features.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
