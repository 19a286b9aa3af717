import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.data.decode import read_image_file
from kerascv_tl.data.readers import pennfudan_source
from kerascv_tl.data.transforms import resize_with_pad
from kerascv_tl.export import export_detector, load_serving
from kerascv_tl.tasks import detector

SIZE = 128
THRESHOLD = 0.005  # fresh heads score ~0.01 (focal-loss prior): plenty of boxes to compare


def _keras_detections(model, image):
    """The in-memory model on a letterboxed image, boxes mapped back to original pixels by hand."""
    padded, scale = resize_with_pad(tf.constant(image), SIZE)
    out = model.predict(padded[None], verbose=0)
    n = int(out["num_detections"][0])
    boxes = np.asarray(out["boxes"][0][:n]) / float(scale)
    boxes = np.clip(boxes, 0, [image.shape[1], image.shape[0], image.shape[1], image.shape[0]])
    return boxes, np.asarray(out["confidence"][0][:n]), np.asarray(out["labels"][0][:n])


@pytest.mark.slow(seconds=30)
def test_saved_model_boxes_match_the_keras_model_on_real_pennfudan_photos(assets, mobilenet_v2_weights, tmp_path):
    model = detector("mobilenet_v2", 1, weights=str(mobilenet_v2_weights), image_size=SIZE)
    records = pennfudan_source(assets / "pennfudan").records[:3]
    assert len({(r.width, r.height) for r in records}) > 1  # different sizes and aspect ratios
    # The model keeps its default decoder (threshold 0.5, 100 boxes); the export brings its own.
    folder = export_detector(model, ["person"], tmp_path / "pedestrians", score_threshold=THRESHOLD, max_detections=50)
    assert model.prediction_decoder.max_detections == 100  # restored after the export
    previous = model.prediction_decoder
    model.prediction_decoder = type(previous)(
        bounding_box_format="xyxy",
        from_logits=True,
        iou_threshold=0.5,
        confidence_threshold=THRESHOLD,
        max_detections=50,
    )
    loaded, _ = load_serving(folder)
    served = loaded.signatures["serving_default"](image_bytes=tf.constant([open(r.path, "rb").read() for r in records]))
    served = {k: v.numpy() for k, v in served.items()}
    total = 0
    for i, record in enumerate(records):
        boxes, scores, labels = _keras_detections(model, read_image_file(record.path))
        n = int(served["num_detections"][i])
        assert n == len(boxes) and n > 0
        total += n
        assert np.abs(served["boxes"][i][:n] - boxes).max() <= 1.0  # original pixels
        np.testing.assert_allclose(served["scores"][i][:n], scores, atol=1e-4)
        np.testing.assert_array_equal(served["class_ids"][i][:n], labels)
        assert set(served["class_names"][i][:n]) == {b"person"}
        assert (served["class_ids"][i][n:] == -1).all() and (served["class_names"][i][n:] == b"").all()
        width, height = record.width, record.height
        assert served["boxes"][i][:n, 2].max() <= width and served["boxes"][i][:n, 3].max() <= height
    assert total > 10


@pytest.mark.slow(seconds=35)
def test_uint8_signature_matches_bytes(assets, tmp_path):
    model = detector("mobilenet_v2", 2, weights="none", image_size=64)
    folder = export_detector(model, ["a", "b"], tmp_path / "d", score_threshold=0.0, max_detections=20)
    loaded, _ = load_serving(folder)
    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 90, 3), dtype=np.uint8)).save(path)
    by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant([path.read_bytes()] * 2))
    by_pixels = loaded.signatures["serving_images"](images=tf.constant(np.stack([np.asarray(Image.open(path))] * 2)))
    for key in ("boxes", "scores", "class_ids", "num_detections"):
        np.testing.assert_allclose(by_bytes[key].numpy(), by_pixels[key].numpy(), atol=1e-5)
    assert by_bytes["boxes"].shape == (2, 20, 4)
