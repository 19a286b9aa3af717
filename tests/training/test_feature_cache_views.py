"""`train.cache_views`: fixed augmentations of the training images cached as extra embedding rows."""

import numpy as np
import pytest
import tensorflow as tf
from support import tiny_overrides

from kerascv_tl.backbones import build_backbone
from kerascv_tl.config import load_config
from kerascv_tl.config_checks import ConfigError
from kerascv_tl.data.pipeline import eval_images
from kerascv_tl.data.readers import read_classification_sources
from kerascv_tl.tasks.classifier import classifier, feature_extractor
from kerascv_tl.training.feature_cache import cache_key, cached_feature_data, read_cache


def _setup(shapes, tmp_path, views):
    overrides = tiny_overrides(
        shapes,
        recipe="feature_extraction",
        **{
            "train.cache_features": "true",
            "train.feature_cache_dir": str(tmp_path / "cache"),
            "train.cache_views": "[" + ",".join(views) + "]",
        },
    )
    config = load_config(None, overrides)
    backbone = build_backbone("mobilenet_v2", "none", 32)
    train, val = read_classification_sources(config.data, config.seed)[:2]
    return config, backbone, feature_extractor(classifier(backbone, train.num_classes)), train, val


def _epoch(data, epoch):
    return [tuple(np.asarray(t) for t in batch) for batch in data.make(epoch).take(data.steps)]


@pytest.mark.slow(seconds=20)
def test_each_view_is_one_more_row_per_image_under_its_own_key_and_epochs_are_pure(shapes_classification, tmp_path):
    config, backbone, extractor, train, val = _setup(shapes_classification, tmp_path, ["flip", "zoom"])
    data, val_batches = cached_feature_data(extractor, backbone.info(), train, val, config)
    n = len(train)
    assert data.steps == -(-3 * n // config.train.batch_size)  # three rows per training image
    assert sum(len(b[0]) for b in val_batches) == len(val)  # validation: the evaluation image only

    info, cache = backbone.info(), tmp_path / "cache"
    keys = [cache_key(info, config.data, config.seed, view) for view in (None, "flip", "zoom")]
    plain, flip, zoom = (read_cache(cache, key) for key in keys)
    assert len(plain) == n + len(val) and len(flip) == n and len(zoom) == n
    assert cache_key(info, config.data, config.seed, None) == cache_key(info, config.data, config.seed)
    # The flip rows are the embeddings of the mirrored evaluation images, in the cache's image order.
    images = np.stack([image for image, _ in eval_images(train, config.data).as_numpy_iterator()])
    mirrored = np.asarray(extractor(tf.image.flip_left_right(images), training=False))
    plain_rows = np.asarray(extractor(images, training=False))
    flip_rows = np.stack(list(flip.values()))
    scale = np.abs(plain_rows).max()  # a random-init backbone's embeddings are tiny: compare relative to them
    for row in mirrored:
        assert np.abs(flip_rows - row).max(axis=1).min() < 1e-3 * scale
    for row in plain_rows:
        assert np.abs(flip_rows - row).max(axis=1).min() > 1e-2 * scale
    assert np.abs(np.stack(list(zoom.values())) - flip_rows).max() > 1e-2 * scale

    # A resumed process rebuilds the same epochs from the cache: epoch e depends only on (seed, e).
    first = [_epoch(data, e) for e in (0, 1)]
    again, _ = cached_feature_data(extractor, backbone.info(), train, val, config)
    second = [_epoch(again, e) for e in (0, 1)]
    for a, b in zip(first, second):
        assert all(np.array_equal(x, y) for batch_a, batch_b in zip(a, b) for x, y in zip(batch_a, batch_b))
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    assert len(list(cache.glob("*.npz"))) == 4  # plain train, plain val, flip, zoom: nothing written again


def test_cache_views_must_be_known_distinct_and_cached(shapes_classification):
    base = tiny_overrides(shapes_classification, **{"train.cache_features": "true"})
    for views in ("[mirror]", "[flip,flip]"):
        with pytest.raises(ConfigError, match="train.cache_views"):
            load_config(None, base + [f"train.cache_views={views}"])
    with pytest.raises(ConfigError, match="needs train.cache_features"):
        load_config(None, tiny_overrides(shapes_classification, **{"train.cache_views": "[flip]"}))
