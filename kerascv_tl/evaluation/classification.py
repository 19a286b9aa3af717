"""Classification metrics as a JSON-ready dict (numpy only, no TensorFlow).

Conventions:

* The confusion matrix has one row per true class and one column per predicted class.
* Precision, recall and F1 of a class with no predictions or no examples are 0.0, never NaN, and no
  numpy warning is raised on the way.
* Macro averages are unweighted means over *all* classes in `class_names`, including classes with no
  examples in this split (their 0.0 pulls the mean down, which is what an evaluation report should show).
* `top5_accuracy` is only reported when there are at least 5 classes (with fewer it is always 1.0).
* `balanced_accuracy` is the mean recall over the classes that have examples in this split (scikit-learn's
  definition); `imbalanced` is true when the largest of those classes has at least IMBALANCED_RATIO times the
  examples of the smallest, and then the reports lead with macro F1 and balanced accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

TOP_K = 5
IMBALANCED_RATIO = 1.5  # max / min examples per class (classes with examples) from which a split is "imbalanced"


def _as_labels(values: Any, name: str, num_classes: int | None = None) -> np.ndarray:
    """Returns `values` as an int64 vector, or raises ValueError saying what is wrong with it."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape [N], got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: need at least one example")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        # Labels that went through a float tensor are accepted as long as they are whole numbers.
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold integer class indices, got non-integer values")
    labels = array.astype(np.int64)
    if num_classes is not None:
        bad = (labels < 0) | (labels >= num_classes)
        if np.any(bad):
            raise ValueError(
                f"{name} must hold class indices in [0, {num_classes}), "
                f"got {int(labels[bad][0])} (and {int(bad.sum()) - 1} other out-of-range values)"
            )
    return labels


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts as an int64 [C, C] matrix: `matrix[t, p]` is the number of examples of class t predicted as p."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    true = _as_labels(y_true, "y_true", num_classes)
    pred = _as_labels(y_pred, "y_pred", num_classes)
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {true.shape[0]} and {pred.shape[0]}")
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise, 0.0 where the denominator is 0 (no warnings, no NaN)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, top-5 accuracy, macro and per-class precision/recall/F1 and the confusion matrix.

    Args:
        y_true: [N] integer class indices in [0, C).
        probabilities: [N, C] scores per class (probabilities or logits: only their order is used).
        class_names: C distinct names, index i naming class i.

    Returns:
        A dict of plain Python floats, ints, strings and lists (ready for `json.dump`).

    Long: every figure of the report comes from one confusion matrix, built once here.
    """
    if isinstance(class_names, str):
        raise ValueError("class_names must be a sequence of names, not a single string")
    names = [str(name) for name in class_names]
    num_classes = len(names)
    if num_classes < 1:
        raise ValueError("class_names is empty: need at least one class")
    if len(set(names)) != num_classes:
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"class_names must be distinct, got duplicates {duplicates}")

    scores = np.asarray(probabilities)
    if scores.ndim != 2:
        raise ValueError(f"probabilities must have shape [N, C], got shape {scores.shape}")
    if scores.shape[1] != num_classes:
        raise ValueError(
            f"probabilities has {scores.shape[1]} columns but class_names has {num_classes} names; they must match"
        )
    if scores.shape[0] < 1:
        raise ValueError("probabilities is empty: need at least one example")
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        raise ValueError(f"probabilities must be numeric, got dtype {scores.dtype}")
    scores = scores.astype(np.float64)
    if not np.all(np.isfinite(scores)):
        raise ValueError("probabilities contains NaN or infinite values")

    true = _as_labels(y_true, "y_true", num_classes)
    if true.shape[0] != scores.shape[0]:
        raise ValueError(
            f"y_true has {true.shape[0]} examples but probabilities has {scores.shape[0]} rows; they must match"
        )

    num_examples = int(true.shape[0])
    pred = np.argmax(scores, axis=1)
    matrix = confusion_matrix(true, pred, num_classes)

    true_positives = np.diag(matrix).astype(np.float64)
    predicted_counts = matrix.sum(axis=0)  # column sums: how often each class was predicted
    support = matrix.sum(axis=1)  # row sums: how many examples each class has
    precision = _safe_divide(true_positives, predicted_counts)
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2.0 * precision * recall, precision + recall)

    result: dict[str, Any] = {"accuracy": float(true_positives.sum() / num_examples)}
    if num_classes >= TOP_K:
        # Indices of the K highest scores per row (their order among themselves does not matter).
        top_k = np.argpartition(-scores, TOP_K - 1, axis=1)[:, :TOP_K]
        result["top5_accuracy"] = float(np.mean(np.any(top_k == true[:, None], axis=1)))
    result.update(
        {
            "num_examples": num_examples,
            "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()),
            "macro_f1": float(f1.mean()),
            "balanced_accuracy": float(recall[support > 0].mean()),
            "imbalanced": bool(support.max() >= IMBALANCED_RATIO * support[support > 0].min()),
            "per_class": {
                name: {
                    "precision": float(precision[i]),
                    "recall": float(recall[i]),
                    "f1": float(f1[i]),
                    "support": int(support[i]),
                }
                for i, name in enumerate(names)
            },
            "confusion_matrix": matrix.tolist(),
            "class_names": names,
        }
    )
    return result
