"""The segmentation task's evaluation runs the export's test-time augmentation (export.tta)."""

import json

import keras
import numpy as np
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.transforms import class_map_at, resize_image, segmentation_logits
from kerascv_tl.evaluation.segmentation import ConfusionAccumulator, segmentation_metrics
from kerascv_tl.tasks import get_task

SIZE = 32
CLASSES = ["background", "thing"]


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "masks").mkdir()
    for i, (height, width) in enumerate([(40, 56), (30, 30), (48, 36)]):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 :, : width // 2] = 1  # a left-hand object: a mirror-blind model gets it wrong somewhere
        Image.fromarray(image).save(tmp_path / "images" / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    return tmp_path


def _model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(4, 5, padding="same", activation="relu")(x)
    return keras.Model(inputs, keras.layers.Conv2D(len(CLASSES), 3, padding="same")(x))


def test_evaluation_scores_the_flip_averaged_class_maps(tmp_path):
    folder = _folder(tmp_path / "data")
    task, model = get_task("segmentation"), _model()
    results = {}
    for tta in ("none", "flip"):
        config = load_config(
            None,
            ["task=segmentation", f"data.image_size={SIZE}", f"export.tta={tta}", f"data.classes={','.join(CLASSES)}"],
        )
        source = task.read_eval_source(str(folder), config, CLASSES)
        results[tta] = task.evaluate(model, source, config, tmp_path / tta, CLASSES, batch_size=2)
        assert results[tta]["tta"] == tta
        assert json.loads((tmp_path / tta / "metrics.json").read_text())["tta"] == tta
        expected = ConfusionAccumulator(len(CLASSES))
        for stem in ("0", "1", "2"):
            image = np.asarray(Image.open(folder / "images" / f"{stem}.png"))
            mask = np.asarray(Image.open(folder / "masks" / f"{stem}.png")).astype(np.int32)
            logits = segmentation_logits(model, resize_image(image, SIZE)[None], tta)[0]
            expected.update(mask, class_map_at(logits, *mask.shape).numpy())
        want = segmentation_metrics(expected.matrix, CLASSES)
        assert abs(results[tta]["miou"] - want["miou"]) < 1e-9
    assert results["none"]["miou"] != results["flip"]["miou"]
