"""Feature extraction: frozen backbone, new head.

With `train.cache_features: true` the backbone runs once over the (un-augmented) training and
validation images, the embeddings are cached on disk, and the head trains on them; the head's layers
are shared with the full classifier, so the exported model is still image -> label. The fine-tune
recipe uses the same head phase before it unfreezes the backbone.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from kerascv_tl.recipes.classification import ClassificationSetup, backbone_info
from kerascv_tl.recipes.feature_cache import cache_key, cached_embeddings
from kerascv_tl.data.epochs import EpochData, epoch_seed
from kerascv_tl.recipes.runner import compile_classifier, fit_phase, restore_best, save_weights, steps_per_epoch
from kerascv_tl.tasks import feature_extractor, freeze_backbone, head_model


def run(s: ClassificationSetup, verbose: int = 2) -> None:
    train_head(s, s.config.train.epochs, verbose)


def train_head(s: ClassificationSetup, epochs: int, verbose: int = 2, image_data=None) -> None:
    """Phase "head": backbone frozen, head trained on cached embeddings or on (augmented) images.

    Ends with the classifier holding the best head, and the best checkpoint as full-model weights.
    """
    train_config = s.config.train
    with s.strategy.scope():
        freeze_backbone(s.model)
        trained = head_model(s.model) if train_config.cache_features else s.model
        compile_classifier(trained, train_config, train_config.learning_rate, s.train.num_classes,
                           s.config.jit_compile)
    if train_config.cache_features:
        train_data, val_data = _cached_datasets(s)
    else:
        train_data, val_data = image_data or (s.train_dataset(), s.val_dataset())
    fit_phase(s.run, "head", trained, train_data, val_data, epochs, train_config, verbose)
    if restore_best(s.run, trained) and trained is not s.model:
        # The checkpoint holds the head model's weights; keep it loadable into the whole classifier.
        save_weights(s.model, s.run.best_weights)


def _cached_datasets(s: ClassificationSetup):
    config = s.config
    cache_dir = config.train.feature_cache_dir or f"{config.output_dir}/.feature_cache"
    extractor = feature_extractor(s.model)
    info = backbone_info(s.backbone)
    batch = config.train.batch_size
    datasets = []
    for source in (s.train, s.val):
        key = cache_key(info, source, config.data, config.seed)
        embeddings, labels = cached_embeddings(extractor, source, config.data, cache_dir, key, batch)
        one_hot = keras.utils.to_categorical(labels, source.num_classes).astype(np.float32)
        datasets.append(tf.data.Dataset.from_tensor_slices((embeddings, one_hot)))
    train, val = datasets

    def epoch(e: int) -> tf.data.Dataset:
        shuffled = train.shuffle(len(s.train), seed=epoch_seed(config.seed, e), reshuffle_each_iteration=False)
        return shuffled.batch(batch).prefetch(tf.data.AUTOTUNE)

    return EpochData(epoch, steps_per_epoch(len(s.train), batch)), val.batch(batch).prefetch(tf.data.AUTOTUNE)
