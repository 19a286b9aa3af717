"""What both classification recipes share: sources, model under the strategy, evaluation, card."""

from __future__ import annotations

import logging

import keras

from kerascv_tl.backbones import Backbone, build_backbone
from kerascv_tl.data.classification import ImageSource
from kerascv_tl.data.epochs import EpochData
from kerascv_tl.data.pipeline import eval_dataset, training_epochs
from kerascv_tl.evaluation.report import predict_all, write_classification_report
from kerascv_tl.precision import precision_scope
from kerascv_tl.recipes.runner import RunFolder, TaskSetup, checked_sources, write_model_card
from kerascv_tl.tasks.classifier import classifier
from kerascv_tl.utils.io import atomic_write_json

log = logging.getLogger(__name__)


class ClassificationSetup(TaskSetup):
    """Sources are `ImageSource`s; the datasets come from the classification pipeline."""

    def train_dataset(self) -> EpochData:
        return training_epochs(self.train, self.config.data, self.config.train.batch_size, self.config.seed)

    def val_dataset(self):
        return eval_dataset(self.val, self.config.data, self.config.train.batch_size, cache=True)


def backbone_info(backbone: Backbone) -> dict:
    return {
        "name": backbone.name,
        "image_size": backbone.image_size,
        "pooling": backbone.pooling,
        "preprocessing": backbone.preprocessing.to_dict(),
        "weights_source": backbone.weights_source,
        "precision": backbone.model.dtype_policy.name,  # the policy it was built with (part of the feature cache key)
    }


def backbone_from_config(config) -> Backbone:
    """The `backbone:` section (name, weights, optional preprocessing override) at `data.image_size`."""
    bb = config.backbone
    preprocessing = None
    if bb.preprocessing is not None:
        preprocessing = {"scale": bb.preprocessing.scale, "mean": bb.preprocessing.mean,
                         "std": bb.preprocessing.std, "channel_order": bb.preprocessing.channel_order}
    return build_backbone(bb.name, bb.weights, config.data.image_size, preprocessing, bb.fallback_to_random)


def setup(config, run: RunFolder, strategy) -> ClassificationSetup:
    train, val = checked_sources(config, run)
    log.info("data: %d training and %d validation images, %d classes %s", len(train), len(val),
             train.num_classes, train.class_names)
    run.save_class_names(train.class_names)
    # The model is built under the config's dtype policy, which is put back afterwards (kerascv_tl/precision.py).
    with strategy.scope(), precision_scope(config.precision):
        backbone = backbone_from_config(config)
        model = classifier(backbone, train.num_classes, dropout=config.head.dropout)
    atomic_write_json(run / "backbone.json", backbone_info(backbone))
    return ClassificationSetup(config, run, train, val, backbone, model, strategy)


def evaluate_model(model: keras.Model, source: ImageSource, data_config, out_dir, class_names, batch_size=32,
                   histories=(), extra=None) -> dict:
    batches = (
        (images.numpy(), labels.numpy())
        for images, labels in eval_dataset(source, data_config, batch_size)
    )
    y_true, probs, mistakes = predict_all(lambda x: model.predict_on_batch(x), batches)
    return write_classification_report(out_dir, y_true, probs, class_names, mistakes, histories, extra)


def finish(s: ClassificationSetup) -> dict:
    """Saves the final model, evaluates it on the validation data and writes the model card."""
    s.run.save_model(s.model)
    extra = {
        "recipe": s.config.recipe,
        "backbone": s.backbone.name,
        "num_train_examples": len(s.train),
    }
    metrics = evaluate_model(s.model, s.val, s.config.data, s.run.root, s.class_names, s.config.train.batch_size,
                             s.run.history_files(), extra)
    write_model_card(s, metrics)
    return metrics

