"""A fold's evaluation from the cached embeddings, when its backbone never left the frozen state.

A feature-extraction classifier with `train.cache_features` is its frozen backbone followed by the head the
run trained, so its probabilities on a validation image are the head's on that image's cached embedding: the
report (metrics.json, confusion matrix, mistakes, curves) is the one `ClassificationTask.evaluate` writes,
without running the backbone over the fold's images again. Only the images shown as mistakes are decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from kerascv_tl.data.decode import decode_image
from kerascv_tl.data.transforms import eval_transform
from kerascv_tl.evaluation.report import predict_all, write_classification_report
from kerascv_tl.tasks.classification import ClassificationTask
from kerascv_tl.tasks.classifier import feature_extractor, head_model
from kerascv_tl.training.feature_cache import cache_key, cached_embeddings, feature_cache_dir

if TYPE_CHECKING:
    from kerascv_tl.tasks.base import Task, TaskSetup

__all__ = ["cached_evaluation"]


def cached_evaluation(task: Task, config) -> Callable[..., dict] | None:
    """The evaluation `kerascv_tl.recipes.train(evaluate=...)` takes, for a run whose backbone stays frozen and
    whose embeddings are cached; None (evaluate on images as usual) otherwise."""
    frozen = config.recipe == "feature_extraction" and config.train.cache_features and config.model.preset is None
    if not (frozen and type(task) is ClassificationTask):
        return None
    return _evaluate_from_cache


def _evaluate_from_cache(task: Task, setup: TaskSetup, histories, extra) -> dict:
    config, source = setup.config, setup.val
    cache_dir = feature_cache_dir(config)
    key = cache_key(setup.backbone.info(), config.data, config.seed)
    batch = config.train.batch_size
    embeddings, labels = cached_embeddings(feature_extractor(setup.model), source, config.data, cache_dir, key, batch)
    if len(labels) != len(source):  # an image that no longer decodes: leave it to the evaluation on images
        return task.evaluate(setup.model, source, config, setup.run.root, setup.class_names, batch, histories, extra)
    head = head_model(setup.model)
    shown = _Thumbnails(source.paths, config.data)
    batches = ((embeddings[i : i + batch], labels[i : i + batch], shown.batch(i)) for i in range(0, len(labels), batch))
    y_true, probabilities, mistakes = predict_all(lambda x: np.asarray(head(x, training=False)), batches)
    return write_classification_report(
        setup.run.root, y_true, probabilities, setup.class_names, mistakes, histories, extra
    )


class _Thumbnails:
    """The eval-transformed image of one example, decoded only when `predict_all` shows it as a mistake."""

    def __init__(self, paths: list[str], data_config):
        self.paths, self.data_config = paths, data_config

    def batch(self, start: int) -> _Thumbnails._Batch:
        return _Thumbnails._Batch(self, start)

    class _Batch:
        def __init__(self, owner: _Thumbnails, start: int):
            self.owner, self.start = owner, start

        def __getitem__(self, i: int) -> np.ndarray:
            import tensorflow as tf

            data = self.owner.data_config
            image = decode_image(tf.io.read_file(self.owner.paths[self.start + int(i)]))
            return eval_transform(image, data.image_size, data.crop_fraction).numpy()
