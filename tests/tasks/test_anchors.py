import numpy as np
import pytest

from kerascv_tl.config import load_config
from kerascv_tl.data.records import DetectionRecord, DetectionSource
from kerascv_tl.tasks.anchors import KERAS_HUB_ASPECT_RATIOS, fitted_aspect_ratios
from kerascv_tl.tasks.detection import anchor_aspect_ratios


def _boxes(ratios, width=20.0):
    """xyxy boxes of the given height / width ratios."""
    return np.array([[5, 5, 5 + width, 5 + width * r] for r in ratios], np.float32)


def test_three_boxes_give_the_log_quantiles():
    # log ratios 0, ln 2, ln 4 at 1/6, 1/2, 5/6 by linear interpolation: ln 2 * (1/3, 1, 5/3)
    assert fitted_aspect_ratios([_boxes([1.0, 2.0, 4.0])]) == [1.26, 2.0, 3.17]


def test_tall_boxes_get_tall_anchors_in_order():
    rng = np.random.default_rng(0)
    ratios = np.exp(rng.normal(np.log(2.75), 0.2, 300))  # pedestrians: height about 2.75 x width
    fitted = fitted_aspect_ratios([_boxes(ratios[:150]), _boxes(ratios[150:], width=7.0)])
    assert fitted == sorted(fitted) and len(fitted) == 3
    assert 1.8 < fitted[0] < fitted[1] < fitted[2] < 4.0
    assert abs(fitted[1] - 2.75) < 0.15


def test_scale_does_not_move_the_ratios():
    ratios = [0.5, 0.8, 1.0, 1.5, 3.0]
    assert fitted_aspect_ratios([_boxes(ratios, 10.0)]) == fitted_aspect_ratios([_boxes(ratios, 300.0)])


@pytest.mark.parametrize(
    "boxes",
    [[], [_boxes([2.0, 3.0])], [np.array([[0, 0, 0, 10], [0, 0, 10, 0], [3, 3, 3, 3], [0, 0, 5, 10]], np.float32)]],
)
def test_too_few_boxes_with_area_keep_keras_hub_ratios(boxes):
    assert fitted_aspect_ratios(boxes) == list(KERAS_HUB_ASPECT_RATIOS)


def test_config_default_is_keras_hub_a_list_wins_and_auto_fits_the_training_boxes():
    source = DetectionSource(
        [DetectionRecord(f"{i}.jpg", _boxes([3.0, 3.0]), [0, 0], 100, 100) for i in range(3)], ["person"]
    )
    assert anchor_aspect_ratios(load_config(None, ["task=detection"]), source) == list(KERAS_HUB_ASPECT_RATIOS)
    fitted = load_config(None, ["task=detection", "head.anchor_aspect_ratios=auto"])
    assert anchor_aspect_ratios(fitted, source) == [3.0, 3.0, 3.0]
    listed = load_config(None, ["task=detection", "head.anchor_aspect_ratios=[1.0, 2.5]"])
    assert anchor_aspect_ratios(listed, source) == [1.0, 2.5]
