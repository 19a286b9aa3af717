import json
import warnings

import numpy as np
import pytest

from kerascv_tl.evaluation.classification import classification_metrics, confusion_matrix

CLASSES = ["cat", "dog", "bird"]
#                  cat cat cat cat dog dog dog bird bird bird
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 1])


def scores_for(predictions, num_classes):
    """Probabilities whose argmax is `predictions`: 0.8 on the predicted class, the rest shared equally."""
    probs = np.full((len(predictions), num_classes), 0.2 / (num_classes - 1))
    probs[np.arange(len(predictions)), predictions] = 0.8
    return probs


def assert_plain_json(value):
    """Only built-in Python types, all the way down (no numpy scalars, no NaN)."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    else:
        assert type(value) in (int, float, str, bool), type(value)
        if type(value) is float:
            assert np.isfinite(value)


def test_confusion_matrix_by_hand():
    # rows = true, cols = predicted
    # true cat  (4): predicted cat, cat, dog, bird -> [2, 1, 1]
    # true dog  (3): predicted dog, dog, cat       -> [1, 2, 0]
    # true bird (3): predicted bird, bird, dog     -> [0, 1, 2]
    expected = np.array([[2, 1, 1], [1, 2, 0], [0, 1, 2]])
    matrix = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, expected)


def test_confusion_matrix_counts_classes_never_seen():
    matrix = confusion_matrix(np.array([0, 1]), np.array([1, 1]), 4)
    np.testing.assert_array_equal(matrix, [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize(
    "y_true, y_pred, num_classes",
    [
        (np.array([0, 1]), np.array([0]), 2),  # different lengths
        (np.array([0, 2]), np.array([0, 1]), 2),  # label out of range
        (np.array([[0, 1]]), np.array([[0, 1]]), 2),  # not 1-D
        (np.array([0, 1]), np.array([0, 1]), 0),  # no classes
    ],
)
def test_confusion_matrix_rejects_bad_input(y_true, y_pred, num_classes):
    with pytest.raises(ValueError):
        confusion_matrix(y_true, y_pred, num_classes)


def test_three_class_metrics_by_hand():
    result = classification_metrics(Y_TRUE, scores_for(Y_PRED, 3), CLASSES)

    # predicted counts (column sums) = [3, 4, 3]; support (row sums) = [4, 3, 3]; diagonal = [2, 2, 2]
    # precision: cat 2/3, dog 2/4 = 0.5, bird 2/3
    # recall:    cat 2/4 = 0.5, dog 2/3, bird 2/3
    # f1 = 2pr / (p + r): cat 2*(2/3)(1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7; dog the same 4/7;
    #                     bird 2*(2/3)(2/3) / (4/3) = 2/3
    expected = {
        "cat": {"precision": 2 / 3, "recall": 0.5, "f1": 4 / 7, "support": 4},
        "dog": {"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "support": 3},
        "bird": {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3},
    }
    assert result["per_class"].keys() == expected.keys()
    for name, values in expected.items():
        got = result["per_class"][name]
        assert got["support"] == values["support"]
        for key in ("precision", "recall", "f1"):
            assert got[key] == pytest.approx(values[key]), (name, key)

    # accuracy = diagonal / N = 6 / 10
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["num_examples"] == 10
    # macro precision = (2/3 + 1/2 + 2/3) / 3 = (11/6) / 3 = 11/18; macro recall the same numbers in another order
    assert result["macro_precision"] == pytest.approx(11 / 18)
    assert result["macro_recall"] == pytest.approx(11 / 18)
    # macro f1 = (4/7 + 4/7 + 2/3) / 3 = (24/21 + 14/21) / 3 = 38/63
    assert result["macro_f1"] == pytest.approx(38 / 63)
    assert result["confusion_matrix"] == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    assert result["class_names"] == CLASSES
    assert "top5_accuracy" not in result  # only 3 classes

    assert_plain_json(result)
    assert json.loads(json.dumps(result)) == result


def test_top5_accuracy_with_six_classes_by_hand():
    names = [f"c{i}" for i in range(6)]
    probabilities = np.array(
        [
            [0.50, 0.20, 0.10, 0.10, 0.05, 0.05],  # true 0: predicted 0 (right), in top 5
            [0.30, 0.25, 0.20, 0.15, 0.08, 0.02],  # true 5: lowest score, rank 6 -> not in top 5; predicted 0
            [0.40, 0.30, 0.10, 0.12, 0.05, 0.03],  # true 3: rank 3 (0.40, 0.30, 0.12) -> in top 5; predicted 0
            [0.05, 0.10, 0.15, 0.20, 0.06, 0.44],  # true 4: rank 5 (0.44, 0.20, 0.15, 0.10, 0.06) -> in; predicted 5
        ]
    )
    y_true = np.array([0, 5, 3, 4])
    result = classification_metrics(y_true, probabilities, names)
    assert result["accuracy"] == pytest.approx(1 / 4)  # only row 0 is right
    assert result["top5_accuracy"] == pytest.approx(3 / 4)  # rows 0, 2, 3
    # predictions [0, 0, 0, 5]: c0 predicted 3 times, right once -> precision 1/3; c5 predicted once, wrongly
    assert result["per_class"]["c0"]["precision"] == pytest.approx(1 / 3)
    assert result["per_class"]["c5"]["precision"] == 0.0
    assert_plain_json(result)


def test_top5_present_with_exactly_five_classes():
    result = classification_metrics(np.array([0, 4]), scores_for(np.array([1, 2]), 5), list("abcde"))
    assert result["accuracy"] == 0.0
    assert result["top5_accuracy"] == 1.0  # 5 classes: the true one is always among the top 5


def test_perfect_predictions_give_one_everywhere():
    y = np.array([0, 1, 2, 3, 4, 5, 0, 1])
    result = classification_metrics(y, scores_for(y, 6), [f"c{i}" for i in range(6)])
    for key in ("accuracy", "top5_accuracy", "macro_precision", "macro_recall", "macro_f1"):
        assert result[key] == 1.0, key
    for name, values in result["per_class"].items():
        assert values["precision"] == values["recall"] == values["f1"] == 1.0, name
    assert result["confusion_matrix"] == np.diag([2, 2, 1, 1, 1, 1]).tolist()


def test_class_without_predictions_or_support_is_zero_without_warnings():
    # 4 classes: "bird" has examples but is never predicted; "fish" has no examples and is never predicted.
    y_true = np.array([0, 1, 2, 2])
    y_pred = np.array([0, 1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = classification_metrics(y_true, scores_for(y_pred, 4), ["cat", "dog", "bird", "fish"])
    assert result["per_class"]["bird"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert result["per_class"]["fish"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # cat: predicted twice, right once -> precision 1/2, recall 1/1 -> f1 = 2*(1/2)(1) / (3/2) = 2/3
    assert result["per_class"]["cat"]["f1"] == pytest.approx(2 / 3)
    # macro over all 4 classes, empty ones included: precision (1/2 + 1/2 + 0 + 0) / 4 = 1/4
    assert result["macro_precision"] == pytest.approx(0.25)
    assert_plain_json(result)


def test_accepts_lists_and_whole_float_labels():
    result = classification_metrics([0.0, 1.0], [[0.9, 0.1], [0.2, 0.8]], ("a", "b"))
    assert result["accuracy"] == 1.0


@pytest.mark.parametrize(
    "y_true, probabilities, class_names, message",
    [
        (np.array([[0], [1]]), np.eye(2), ["a", "b"], "y_true"),  # y_true not [N]
        (np.array([0, 1]), np.array([0.5, 0.5]), ["a", "b"], "probabilities"),  # probabilities not [N, C]
        (np.array([0, 1]), np.eye(2), ["a", "b", "c"], "class_names"),  # C != len(class_names)
        (np.array([0, 1, 1]), np.eye(2), ["a", "b"], "rows"),  # N mismatch
        (np.array([0, 2]), np.eye(2), ["a", "b"], r"\[0, 2\)"),  # label out of range
        (np.array([-1, 0]), np.eye(2), ["a", "b"], r"\[0, 2\)"),  # negative label
        (np.array([0.5, 1.0]), np.eye(2), ["a", "b"], "integer"),  # non-integer labels
        (np.zeros(0, dtype=int), np.zeros((0, 2)), ["a", "b"], "empty"),  # N == 0
        (np.array([0, 1]), np.eye(2), ["a", "a"], "distinct"),  # duplicate names
        (np.array([0, 1]), np.array([[np.nan, 1.0], [0.0, 1.0]]), ["a", "b"], "NaN"),
        (np.array([0]), np.zeros((1, 0)), [], "class_names"),  # no classes
    ],
)
def test_bad_inputs_raise_value_error(y_true, probabilities, class_names, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, probabilities, class_names)


def test_balanced_accuracy_is_the_mean_recall_over_classes_with_examples():
    names = ["cat", "dog", "bird", "fish"]  # no fish in this split
    metrics = classification_metrics(Y_TRUE, scores_for(Y_PRED, 4), names)
    # recall: cat 2/4, dog 2/3, bird 2/3; fish has no examples and does not count
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 4 + 2 / 3 + 2 / 3) / 3)
    assert metrics["macro_recall"] == pytest.approx((2 / 4 + 2 / 3 + 2 / 3) / 4)
    assert metrics["per_class"]["cat"]["recall"] == pytest.approx(0.5)
    assert metrics["imbalanced"] is False  # 4 vs 3 examples: below 1.5:1


def test_an_imbalanced_split_is_flagged_and_leads_the_report_with_macro_f1_and_balanced_accuracy():
    from kerascv_tl.tasks.classification import ClassificationTask

    y_true = np.array([0] * 9 + [1] * 3)
    y_pred = np.array([0] * 9 + [0, 0, 1])
    metrics = classification_metrics(y_true, scores_for(y_pred, 2), ["common", "rare"])
    assert metrics["imbalanced"] is True and metrics["accuracy"] == pytest.approx(10 / 12)
    assert metrics["balanced_accuracy"] == pytest.approx((1 + 1 / 3) / 2)
    task = ClassificationTask()
    line = task.result_line(metrics)
    assert line.index("macro F1") < line.index("balanced accuracy") < line.index("accuracy: 0.8333")
    assert "rare 0.3333" in line and "common 1.0000" in line
    assert task.headline(metrics).startswith("macro F1 ")
    assert "balanced accuracy: 0.6667" in task.evaluation_line(metrics)
    assert "balanced_accuracy" in task.card_metrics
    balanced = classification_metrics(Y_TRUE[:7], scores_for(Y_PRED[:7], 3), CLASSES)
    assert task.result_line(balanced).startswith("validation accuracy: ")
