"""Trains tiny classification, detection and segmentation recipes under two strategies; prints their losses.

    python tests/recipes/strategy_losses.py WORK_DIR STRATEGY [STRATEGY ...]

Run in its own process: the CPU is split into two logical devices before TensorFlow starts, so that
`mirrored` has two replicas. Prints one JSON object {task: {strategy: {"loss": [...], "val_loss": [...]}}}
with the per-epoch losses from the run folders' CSV logs: two epochs of the fine-tune phase, backbone unfrozen
(no head phase: the frozen-backbone phase trains a subset of the same computation and would double the tracing).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from kerascv_tl.config import load_config  # noqa: E402
from kerascv_tl.data import synthetic  # noqa: E402
from kerascv_tl.recipes import train  # noqa: E402

COMMON = [
    "recipe=fine_tune",
    "train.batch_size=8",
    "train.head_epochs=0",  # straight to the unfrozen phase, where synchronized BatchNorm trains
    "train.epochs=2",
    "train.learning_rate=0.01",
    "train.fine_tune_learning_rate=0.001",
    "train.early_stopping_patience=0",
    "train.monitor=val_loss",
    "train.warmup_epochs=0",
]


def narrow_resnet(folder: Path) -> Path:
    """A small KerasHub ResNet preset (random weights, BatchNorm in every block): quick to trace twice."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)  # the same random backbone in every run of this script
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 64, 64, 64],
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
    ).save_to_preset(str(folder))
    return folder


def task_overrides(work: Path) -> dict[str, list[str]]:
    cls = synthetic.write_classification_dataset(
        work / "cls", train_per_class=6, val_per_class=2, image_size=32, seed=0
    )
    det = synthetic.write_detection_dataset(work / "det", num_train=16, num_val=8, image_size=64, seed=0)
    seg = synthetic.write_segmentation_dataset(work / "seg", num_train=16, num_val=8, image_size=32, seed=0)
    backbone = f"backbone.name={narrow_resnet(work / 'resnet')}"
    return {
        "classification": [
            "task=classification",
            f"data.train={cls}/train",
            f"data.val={cls}/val",
            "data.image_size=32",
            "head.dropout=0.0",  # no dropout: replicas draw their own masks (the other heads have none)
            backbone,
        ],
        "detection": [
            "task=detection",
            "data.format=coco",
            "data.image_size=64",
            backbone,
            "train.learning_rate=0.001",
            f"data.train={det}/annotations/instances_train.json",
            f"data.val={det}/annotations/instances_val.json",
            f"data.image_root={det}/images/train",
            f"data.val_image_root={det}/images/val",
        ],
        "segmentation": [
            "task=segmentation",
            "data.format=masks",
            "data.image_size=32",
            backbone,
            f"data.train={seg}/train",
            f"data.val={seg}/val",
            f"data.classes={seg}/classes.yaml",
        ],
    }


def losses(run_dir: Path) -> dict[str, list[float]]:
    rows = []
    for phase in ("head", "fine_tune"):
        if (run_dir / f"history_{phase}.csv").is_file():  # no head phase when train.head_epochs=0
            with open(run_dir / f"history_{phase}.csv", newline="") as f:
                rows += list(csv.DictReader(f))
    return {key: [float(r[key]) for r in rows] for key in ("loss", "val_loss")}


def main(work: Path, strategies: list[str], tasks: list[str]) -> dict:
    overrides = task_overrides(work)
    result = {}
    for task in tasks:
        for strategy in strategies:
            config = load_config(None, COMMON + overrides[task] + [f"strategy={strategy}"])
            run, _ = train(config, output=work / "runs" / f"{task}_{strategy}", verbose=0)
            result.setdefault(task, {})[strategy] = losses(run.root)
    return result


if __name__ == "__main__":
    tasks = os.environ.get("TASKS", "classification,detection,segmentation").split(",")
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2:], tasks)))
