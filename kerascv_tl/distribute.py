"""Strategy resolution: one config value picks how training is spread over devices.

`auto` picks a TPU when one is found, multi-worker when TF_CONFIG lists more than one worker, mirrored
when there is more than one GPU, else the default (single-device) strategy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

if TYPE_CHECKING:
    from kerascv_tl.config import RecipeConfig

log = logging.getLogger(__name__)


def _tf_config() -> dict:
    try:
        return json.loads(os.environ.get("TF_CONFIG", "{}"))
    except json.JSONDecodeError:
        raise ValueError("TF_CONFIG is not valid JSON") from None


def _tf_config_workers() -> int:
    cluster = _tf_config().get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def is_chief() -> bool:
    """False only for a process TF_CONFIG puts in a cluster of several workers as other than the chief
    (task "chief", or "worker" 0 when the cluster has no chief)."""
    if _tf_config_workers() <= 1:
        return True
    config = _tf_config()
    task = config.get("task", {})
    chief = ("chief", 0) if config["cluster"].get("chief") else ("worker", 0)
    return (task.get("type"), int(task.get("index", 0))) == chief


def worker_run_dir(run_dir: str | Path) -> Path:
    """The run folder this process writes: `run_dir` on the chief, a temporary folder on other workers.

    Other workers run the same recipe (every collective needs all of them), and the recipe reads its run
    folder back (best checkpoint, finished phases, backups), so they write a copy that
    `discard_worker_run_dir` removes at the end. Its name depends on the task and `run_dir` only, so a
    crashed run resumes on every worker alike.
    """
    run_dir = Path(run_dir)
    if is_chief():
        return run_dir
    task = _tf_config()["task"]
    key = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"kerascv_tl_{task['type']}{task.get('index', 0)}_{key}" / run_dir.name


def discard_worker_run_dir(run_dir: str | Path) -> None:
    """Removes a non-chief worker's folder from `worker_run_dir` (a no-op on the chief)."""
    if not is_chief():
        shutil.rmtree(Path(run_dir).parent, ignore_errors=True)


def _tpu_resolver():
    if not (os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR") or os.path.exists("/dev/accel0")):
        return None
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, tf.errors.NotFoundError):
        return None


def resolve_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The strategy for `name`, created once per process and reused (a MultiWorkerMirroredStrategy can only
    be created once, and collectives of two MirroredStrategy objects in one process can get out of step)."""
    if name == "auto":
        if _tpu_resolver() is not None:
            name = "tpu"
        elif _tf_config_workers() > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name not in _STRATEGIES:
        _STRATEGIES[name] = _create_strategy(name)
    return _STRATEGIES[name]


_STRATEGIES: dict[str, tf.distribute.Strategy] = {}


def _create_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = _tpu_resolver() or tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}")


def scale_for_replicas(config: RecipeConfig, num_replicas: int):
    """The config the recipe trains with on `num_replicas` replicas (a copy; the given one is unchanged).

    `train.scale_to_replicas`:
      none          `train.batch_size` is the global batch, split across replicas; learning rates as written.
      batch         `train.batch_size` is per replica: the global batch is batch_size x replicas.
      batch_and_lr  as `batch`, and every learning rate is multiplied by the number of replicas (the linear
                    scaling rule of Goyal et al., 2017; the fine-tune phase's warmup softens the start).
    """
    import copy

    scaled = copy.deepcopy(config)
    mode = config.train.scale_to_replicas
    if num_replicas > 1 and mode in ("batch", "batch_and_lr"):
        scaled.train.batch_size = config.train.batch_size * num_replicas
        if mode == "batch_and_lr":
            scaled.train.learning_rate = config.train.learning_rate * num_replicas
            scaled.train.fine_tune_learning_rate = config.train.fine_tune_learning_rate * num_replicas
    return scaled


def synchronize_batch_norm(model) -> int:
    """Makes every BatchNormalization layer compute training statistics over the GLOBAL batch.

    Without it each replica normalises with its own share of the batch, so N replicas train a different
    model than one device on the same global batch (the reason for torchvision's --sync-bn). Layers in
    inference mode (frozen backbones) are unaffected. Returns the number of layers changed.
    """
    import keras

    changed = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            changed += 1
    return changed


def detach_from_strategy(model) -> None:
    """Makes Keras' predict paths on a trained `model` run on this process's default device.

    Under a strategy with several replicas `predict_on_batch` hands each batch back once per replica and,
    with several workers, `predict` fails like `fit`. After training the replicas hold identical weights,
    so evaluation and export use the model as a single-device one.
    """
    model._distribute_strategy = None  # Keras then uses tf.distribute.get_strategy(): the default one
    model.predict_function = None
    model.test_function = None
