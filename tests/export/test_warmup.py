"""TF Serving's warm-up file in every export: PredictionLog records calling serving_default with real encoded images
(a synthetic gradient JPEG by default, or the images given), replayable through the SavedModel."""

from __future__ import annotations

import io
import json
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.export.serving import SERVING_DEFAULT, load_serving, serving_archive, write_versioned
from kerascv_tl.export.warmup import WARMUP_FILE, read_warmup_requests, synthetic_jpeg

SIZE = 12


@pytest.fixture(scope="module")
def archive_parts():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Dense(2)])
    spec = tf.TensorSpec([SIZE, SIZE, 3], tf.float32)

    def prepare(image):
        return tf.image.resize(tf.cast(image, tf.float32), (SIZE, SIZE))

    return model, prepare, spec, lambda pixels: {"out": model(pixels, training=False)}


def export(archive_parts, base, **options):
    model, prepare, spec, finish = archive_parts
    archive = serving_archive(model, prepare, spec, finish)
    return write_versioned(archive, base, None, {}, ["a", "b"], ["out"], {"image_size": SIZE}, **options)


def real_jpeg() -> bytes:
    rows = np.linspace(0, 255, 30)[:, None, None]
    pixels = np.concatenate([rows + 0 * np.arange(40)[None, :, None]] * 3, axis=2).astype(np.uint8)
    pixels[5:20, 10:30] = [200, 30, 90]
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=85)
    return out.getvalue()


def test_default_warmup_is_a_replayable_predict_log(archive_parts, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    folder = export(archive_parts, tmp_path / "m")
    path = folder / WARMUP_FILE
    assert path == folder / "assets.extra" / "tf_serving_warmup_requests" and path.is_file()
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    assert len(records) == 1 and records[0].WhichOneof("log_type") == "predict_log"
    request = records[0].predict_log.request
    assert request.model_spec.signature_name == SERVING_DEFAULT and list(request.inputs) == ["image_bytes"]
    tensor = tf.make_ndarray(request.inputs["image_bytes"])
    assert tensor.shape == (1,)
    image = Image.open(io.BytesIO(tensor[0]))
    assert image.format == "JPEG" and image.size == (SIZE, SIZE)
    pixels = np.asarray(image.convert("RGB")).astype(int)
    assert pixels[:, -1, 0].mean() - pixels[:, 0, 0].mean() > 150  # a real gradient, red across
    assert pixels[-1, :, 1].mean() - pixels[0, :, 1].mean() > 150  # green down
    # Replayed through the loaded SavedModel: the same outputs as a direct call with those bytes.
    loaded, _ = load_serving(folder)
    serve = loaded.signatures[SERVING_DEFAULT]
    replayed = serve(image_bytes=tf.constant(tensor))["out"].numpy()
    direct = serve(image_bytes=tf.constant([synthetic_jpeg(SIZE, SIZE)]))["out"].numpy()
    np.testing.assert_array_equal(replayed, direct)
    card = json.loads((folder / "model_card.json").read_text())["export"]
    assert card["warmup_requests"] == 1 and card["warmup_file"] == "assets.extra/tf_serving_warmup_requests"
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["1"]  # written inside the atomic rename


def test_given_warmup_images_are_stored_exactly(archive_parts, tmp_path):
    jpeg = real_jpeg()
    png = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(png, "PNG")
    folder = export(archive_parts, tmp_path / "m", warmup_images=[jpeg, png.getvalue()])
    requests = read_warmup_requests(folder)
    assert [r.inputs["image_bytes"] for r in requests] == [[jpeg], [png.getvalue()]]
    assert {r.signature_name for r in requests} == {SERVING_DEFAULT}
    assert json.loads((folder / "model_card.json").read_text())["export"]["warmup_requests"] == 2


def test_warmup_images_the_model_refuses_are_left_out(archive_parts, tmp_path, caplog):
    jpeg = real_jpeg()
    with caplog.at_level(logging.WARNING):
        folder = export(archive_parts, tmp_path / "m", warmup_images=[b"not an image", jpeg])
    assert [r.inputs["image_bytes"] for r in read_warmup_requests(folder)] == [[jpeg]]
    assert "warm-up image 0 left out" in caplog.text and "not a JPEG, PNG, GIF, BMP or WebP image" in caplog.text
    # None left: the synthetic gradient stands in, so TF Serving always has a request that loads.
    folder = export(archive_parts, tmp_path / "m", warmup_images=[b""])
    assert [r.inputs["image_bytes"] for r in read_warmup_requests(folder)] == [[synthetic_jpeg(SIZE, SIZE)]]
    with pytest.raises(ValueError, match="warm-up images"):
        export(archive_parts, tmp_path / "m", warmup_images=[])
    with pytest.raises(ValueError, match="warm-up images"):
        export(archive_parts, tmp_path / "m", warmup_images=[jpeg] * 17)


def test_the_synthetic_warmup_image_fits_a_small_max_image_pixels(archive_parts, tmp_path):
    model, prepare, spec, finish = archive_parts
    archive = serving_archive(model, prepare, spec, finish, max_image_pixels=50)
    folder = write_versioned(archive, tmp_path / "m", None, {}, ["a", "b"], ["out"], {"image_size": SIZE})
    [request] = read_warmup_requests(folder)
    assert Image.open(io.BytesIO(request.inputs["image_bytes"][0])).size == (7, 7)  # 12 x 12 is over 50 pixels
    assert json.loads((folder / "model_card.json").read_text())["export"]["max_image_pixels"] == 50
