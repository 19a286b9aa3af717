import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.data.decode import decode_image
from kerascv_tl.data.transforms import class_map_at, resize_image
from kerascv_tl.export import export_segmenter, latest_version_dir, load_serving

SIZE = 32
CLASSES = ["background", "road", "sky"]
SHAPES = [(40, 56), (23, 31), (64, 48)]  # (height, width): different sizes and aspect ratios


@pytest.fixture(scope="module")
def tiny_segmenter():
    """A stand-in segmenter: float32 [B, S, S, 3] in [0, 255] -> logits [B, S, S, 3], seeded random weights."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    logits = keras.layers.Conv2D(len(CLASSES), 1)(x)
    return keras.Model(inputs, logits)


def _images():
    rng = np.random.default_rng(0)
    images = []
    for height, width in SHAPES:
        # Smooth blobs plus noise: a class map with regions, not a constant one.
        yy, xx = np.mgrid[0:height, 0:width]
        base = np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 9.0)], axis=-1)
        noisy = 127.5 + 100 * base + rng.normal(0, 20, (height, width, 3))
        images.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return images


def _encode(image, fmt, tmp_path, name):
    path = tmp_path / f"{name}.{fmt}"
    Image.fromarray(image).save(path, **({"quality": 95} if fmt == "jpg" else {}))
    return path.read_bytes()


def _expected_class_map(model, image, size=SIZE):
    logits = model(resize_image(tf.constant(image), size)[None], training=False)[0]
    return class_map_at(logits, image.shape[0], image.shape[1]).numpy()


def test_served_class_maps_match_the_keras_model_for_mixed_sizes_and_formats(tiny_segmenter, tmp_path):
    images = _images()
    encoded = [
        _encode(image, fmt, tmp_path, f"im{i}_{fmt}") for i, image in enumerate(images) for fmt in ("png", "jpg")
    ]
    folder = export_segmenter(tiny_segmenter, CLASSES, tmp_path / "seg")
    loaded, _ = load_serving(folder)
    served = loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))
    assert set(served) == {"class_map", "height", "width"}
    served = {k: v.numpy() for k, v in served.items()}
    max_height, max_width = max(h for h, _ in SHAPES), max(w for _, w in SHAPES)
    assert served["class_map"].shape == (len(encoded), max_height, max_width)
    assert served["class_map"].dtype == np.int32
    seen = set()
    for i, data in enumerate(encoded):
        decoded = decode_image(tf.constant(data)).numpy()  # the same decoder for PNG and JPEG
        height, width = decoded.shape[:2]
        assert (served["height"][i], served["width"][i]) == (height, width) == SHAPES[i // 2]
        expected = _expected_class_map(tiny_segmenter, decoded)
        got = served["class_map"][i]
        agreement = (got[:height, :width] == expected).mean()
        assert agreement >= 0.999, (i, agreement)
        if i % 2 == 0:  # PNG: lossless, the very same pixels
            np.testing.assert_array_equal(got[:height, :width], expected)
        assert (got[height:, :] == -1).all() and (got[:, width:] == -1).all()
        assert got[:height, :width].min() >= 0
        seen |= set(np.unique(expected).tolist())
    assert len(seen) > 1  # the comparison is not trivially about a constant map


def test_probabilities_sum_to_one_and_agree_with_the_model(tiny_segmenter, tmp_path):
    images = _images()[:2]
    encoded = [_encode(image, "png", tmp_path, f"p{i}") for i, image in enumerate(images)]
    folder = export_segmenter(tiny_segmenter, CLASSES, tmp_path / "seg", include_probabilities=True)
    loaded, _ = load_serving(folder)
    served = {k: v.numpy() for k, v in loaded.signatures["serving_default"](image_bytes=tf.constant(encoded)).items()}
    probabilities = served["probabilities"]
    assert probabilities.shape == (2, SIZE, SIZE, len(CLASSES)) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    batch = tf.stack([resize_image(tf.constant(image), SIZE) for image in images])
    logits = tiny_segmenter(batch, training=False).numpy()
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits, axis=-1).numpy(), atol=1e-5)
    assert (probabilities.argmax(-1) == logits.argmax(-1)).mean() >= 0.999


def test_uint8_signature_matches_bytes(tiny_segmenter, tmp_path):
    image = _images()[0]
    data = _encode(image, "png", tmp_path, "same")
    folder = export_segmenter(tiny_segmenter, CLASSES, tmp_path / "seg", include_probabilities=True)
    loaded, _ = load_serving(folder)
    by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant([data] * 2))
    by_pixels = loaded.signatures["serving_images"](images=tf.constant(np.stack([image] * 2)))
    assert set(by_bytes) == set(by_pixels) == {"class_map", "height", "width", "probabilities"}
    for key in ("class_map", "height", "width"):
        np.testing.assert_array_equal(by_bytes[key].numpy(), by_pixels[key].numpy())
    np.testing.assert_allclose(by_bytes["probabilities"].numpy(), by_pixels["probabilities"].numpy(), atol=1e-6)
    assert by_pixels["class_map"].shape == (2,) + image.shape[:2]
    assert (by_pixels["class_map"].numpy() >= 0).all()  # one size per batch: no padding


def test_versions_and_model_card(tiny_segmenter, tmp_path):
    first = export_segmenter(tiny_segmenter, CLASSES, tmp_path / "m", card={"name": "streets"})
    second = export_segmenter(tiny_segmenter, CLASSES, tmp_path / "m", include_probabilities=True)
    assert (first.name, second.name) == ("1", "2")
    assert latest_version_dir(tmp_path / "m") == second
    for folder, with_probabilities in ((first, False), (second, True)):
        assert (folder / "saved_model.pb").is_file()
        card = json.loads((folder / "model_card.json").read_text())
        export = card["export"]
        assert card["labels"] == CLASSES and export["version"] == int(folder.name)
        assert export["image_size"] == SIZE and export["include_probabilities"] is with_probabilities
        assert "stretch to 32x32" in export["resize"]
        assert set(export["signatures"]) == {"serving_default", "serving_images"}
        assert export["signatures"]["serving_default"]["inputs"] == {"image_bytes": "string [batch]"}
        outputs = " ".join(export["signatures"]["serving_default"]["outputs"])
        assert "class_map" in outputs and ("probabilities" in outputs) is with_probabilities
    assert json.loads((first / "model_card.json").read_text())["name"] == "streets"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]  # no temporary folders left
    with pytest.raises(FileExistsError):
        export_segmenter(tiny_segmenter, CLASSES, tmp_path / "m", version=2)
    with pytest.raises(ValueError, match="2 class names"):
        export_segmenter(tiny_segmenter, CLASSES[:2], tmp_path / "n")


def test_saved_model_class_maps_match_the_keras_segmenter_on_real_pennfudan_photos(
    assets, mobilenet_v2_weights, tmp_path
):
    from kerascv_tl.data.readers import pennfudan_segmentation_source
    from kerascv_tl.tasks.segmenter import segmenter

    size = 96
    model = segmenter("mobilenet_v2", 2, weights=str(mobilenet_v2_weights), image_size=size, architecture="deeplabv3")
    source = pennfudan_segmentation_source(assets / "pennfudan")
    records = source.records[:3]
    assert len({(r.width, r.height) for r in records}) > 1
    images = [decode_image(tf.io.read_file(r.image)).numpy() for r in records]
    # An untrained head calls nearly every pixel one class. Point the person-minus-background direction
    # of the final 1x1 conv (no bias) from the mean background feature to the mean person feature of these
    # photos, centred on the median, so the maps have person regions and boundaries to get wrong.
    from kerascv_tl.data.readers import read_mask

    x = np.stack([resize_image(tf.constant(image), size).numpy() for image in images])
    y = np.stack(
        [tf.image.resize(read_mask(r, source.lookup, 2)[..., None], [size, size], "nearest")[..., 0] for r in records]
    ).reshape(-1)
    features = model.backbone(x, training=False).numpy().reshape(len(y), -1)  # the input of output_conv
    direction = features[y == 1].mean(0) - features[y == 0].mean(0)
    mean = features.mean(0)
    direction -= np.median(features @ direction) / np.median(features @ mean) * mean
    kernel = model.output_conv.get_weights()[0]
    kernel[0, 0, :, 1] = kernel[0, 0, :, 0] + direction
    model.output_conv.set_weights([kernel])

    folder = export_segmenter(model, ["background", "person"], tmp_path / "pedestrians")
    loaded, _ = load_serving(folder)
    served = loaded.signatures["serving_default"](
        image_bytes=tf.constant([open(r.image, "rb").read() for r in records])
    )
    for i, (record, image) in enumerate(zip(records, images)):
        height, width = record.height, record.width
        assert (int(served["height"][i]), int(served["width"][i])) == (height, width)
        expected = _expected_class_map(model, image, size)
        got = served["class_map"][i].numpy()[:height, :width]
        assert (got == expected).mean() >= 0.999
        assert 0.05 < expected.mean() < 0.95  # both classes present


def test_flip_tta_is_mirror_equivariant_and_the_mean_of_both_passes(tiny_segmenter):
    from kerascv_tl.data.transforms import segmentation_logits

    x = tf.constant(np.stack([resize_image(tf.constant(i), SIZE).numpy() for i in _images()]))
    plain = tiny_segmenter(x, training=False).numpy()
    mirrored_pass = tiny_segmenter(x[:, :, ::-1], training=False).numpy()[:, :, ::-1]
    assert np.abs(plain - mirrored_pass).max() > 1e-2  # the stand-in is not mirror-symmetric by itself
    averaged = segmentation_logits(tiny_segmenter, x, "flip").numpy()
    np.testing.assert_allclose(averaged, (plain + mirrored_pass) / 2, atol=1e-5)
    np.testing.assert_allclose(
        segmentation_logits(tiny_segmenter, x[:, :, ::-1], "flip"), averaged[:, :, ::-1], atol=1e-5
    )
    np.testing.assert_allclose(segmentation_logits(tiny_segmenter, x), plain, atol=1e-6)
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        segmentation_logits(tiny_segmenter, x, "rotate")


def test_flip_tta_export_serves_the_averaged_class_maps_and_says_so(tiny_segmenter, tmp_path):
    from kerascv_tl.data.transforms import segmentation_logits

    images = _images()
    encoded = [_encode(image, "png", tmp_path, f"im{i}") for i, image in enumerate(images)]
    folder = export_segmenter(tiny_segmenter, CLASSES, tmp_path / "seg", tta="flip")
    loaded, version = load_serving(folder)
    served = loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))
    differs = 0
    for i, image in enumerate(images):
        pixels = resize_image(tf.constant(image), SIZE)[None]
        expected = class_map_at(segmentation_logits(tiny_segmenter, pixels, "flip")[0], *image.shape[:2]).numpy()
        height, width = image.shape[:2]
        np.testing.assert_array_equal(served["class_map"][i].numpy()[:height, :width], expected)
        differs += int((expected != _expected_class_map(tiny_segmenter, image)).sum())
    assert differs > 0  # the averaged maps are not the single pass's
    assert json.loads((version / "model_card.json").read_text())["export"]["tta"] == "flip"
