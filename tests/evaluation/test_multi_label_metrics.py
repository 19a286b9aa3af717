import json

import numpy as np
import pytest
from support import assert_png

from kerascv_tl.evaluation.multi_label import (
    THRESHOLD_GRID,
    average_precision,
    label_counts,
    macro_f1,
    multi_label_metrics,
    tune_threshold,
)
from kerascv_tl.evaluation.multi_label_loop import write_multi_label_report


def test_average_precision_by_hand():
    # Sorted by score: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-). Operating points (recall, precision):
    # (1/2, 1), (1/2, 1/2), (1, 2/3), (1, 1/2)  ->  AP = 1/2 * 1 + 0 + 1/2 * 2/3 + 0 = 5/6
    assert average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)
    # Perfect ranking, and the worst: positives last (precision 1/4 then 2/5 at recall 1/2 and 1).
    assert average_precision([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(1.0)
    assert average_precision([0, 0, 0, 1, 1], [0.9, 0.8, 0.7, 0.2, 0.1]) == pytest.approx(0.5 * 1 / 4 + 0.5 * 2 / 5)
    assert average_precision([0, 0, 0], [0.3, 0.2, 0.1]) is None


def test_tied_scores_enter_together():
    # 0.9 (+), then 0.5 (+), 0.5 (-), 0.5 (-) tied, then 0.1 (+). Operating points: (1/3, 1), (2/3, 2/4), (1, 3/5).
    # A one-at-a-time sweep would give a different value if the tie were broken in another order.
    expected = 1 / 3 * 1 + 1 / 3 * 2 / 4 + 1 / 3 * 3 / 5
    assert average_precision([1, 0, 1, 0, 1], [0.9, 0.5, 0.5, 0.5, 0.1]) == pytest.approx(expected)
    assert average_precision([1, 1, 0, 0, 1], [0.9, 0.5, 0.5, 0.5, 0.1]) == pytest.approx(expected)


def _example():
    # Three images, three classes; "c" has no positive.
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    p = np.array([[0.9, 0.2, 0.6], [0.3, 0.7, 0.1], [0.2, 0.4, 0.3]], np.float32)
    return y, p


def test_counts_and_macro_f1_by_hand():
    y, p = _example()
    tp, fp, fn = label_counts(y, p, 0.5)
    assert tp.tolist() == [1, 1, 0] and fp.tolist() == [0, 0, 1] and fn.tolist() == [1, 1, 0]
    # a: F1 = 2/(2+0+1) = 2/3; b: 2/3; c has no positive -> not in the macro average.
    assert macro_f1(y, p, 0.5) == pytest.approx(2 / 3)
    # At 0.25: a predicted for images 0 and 1 (tp 2, fp 0) F1 1; b for 1 and 2 (tp 2) F1 1.
    assert macro_f1(y, p, 0.25) == pytest.approx(1.0)
    assert macro_f1(np.zeros_like(y), p, 0.5) is None


def test_threshold_tuning_picks_the_best_macro_f1_and_breaks_ties_towards_one_half():
    y, p = _example()
    threshold, scores = tune_threshold(y, p)
    assert list(scores) == list(THRESHOLD_GRID) and THRESHOLD_GRID[0] == 0.05 and THRESHOLD_GRID[-1] == 0.95
    # Macro F1 is 1 for every threshold in (0.2, 0.3] (a: 0.9, 0.3 kept; b: 0.7, 0.4 kept): 0.25 and 0.30 tie,
    # and 0.30 is nearer 0.5.
    assert scores[0.25] == pytest.approx(1.0) and scores[0.3] == pytest.approx(1.0)
    assert scores[0.35] < 1.0 and scores[0.2] < 1.0
    assert threshold == 0.3
    # A plateau on both sides of 0.5: 0.5 itself.
    y2 = np.array([[1], [0]], np.float32)
    assert tune_threshold(y2, np.array([[0.99], [0.01]], np.float32))[0] == 0.5
    # Nothing to find: nothing to tune.
    assert tune_threshold(np.zeros((2, 1)), np.array([[0.9], [0.1]]))[0] == 0.5


def test_metrics_by_hand_and_at_a_given_threshold():
    y, p = _example()
    m = multi_label_metrics(y, p, ["a", "b", "c"])
    assert m["threshold"] == 0.3 and m["threshold_source"].startswith("tuned")
    # AP a: scores 0.9 (+), 0.3 (+), 0.2 (-) -> 1; b: 0.7 (+), 0.4 (+), 0.2 (-) -> 1; c: none.
    assert m["per_class"]["a"]["ap"] == pytest.approx(1.0) and m["per_class"]["c"]["ap"] is None
    assert m["map"] == pytest.approx(1.0)
    # At 0.3, c is predicted for images 0 and 2: two false alarms, in micro F1 (2*4 / (2*4 + 2 + 0)) only.
    assert m["per_class"]["c"] == {"ap": None, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 2}
    assert m["macro_f1"] == pytest.approx(1.0) and m["micro_f1"] == pytest.approx(8 / 10)
    assert m["exact_match"] == pytest.approx(1 / 3)  # image 1 only ({a, b}); 0 and 2 also get c
    assert m["num_examples"] == 3 and m["num_labels"] == 4

    given = multi_label_metrics(y, p, ["a", "b", "c"], threshold=0.5)
    assert given["threshold"] == 0.5 and given["macro_f1_by_threshold"] == {}
    assert given["per_class"]["a"]["precision"] == 1.0 and given["per_class"]["a"]["recall"] == 0.5
    assert given["macro_recall"] == pytest.approx(0.5) and given["macro_precision"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="must both be"):
        multi_label_metrics(y, p[:, :2], ["a", "b", "c"])


def test_report_writes_metrics_and_the_ap_picture(tmp_path):
    y, p = _example()
    metrics = write_multi_label_report(tmp_path / "report", y, p, ["a", "b", "c"], extra={"recipe": "fine_tune"})
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert (
        saved["map"] == pytest.approx(metrics["map"]) and saved["threshold"] == 0.3 and saved["recipe"] == "fine_tune"
    )
    assert_png(tmp_path / "report" / "ap_per_class.png")
