import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure
from support import assert_png, capture_saved_figures, folder_holds_only

from kerascv_tl.evaluation import plots
from kerascv_tl.evaluation.plots import (
    plot_confusion_matrix,
    plot_image_grid,
    plot_misclassified,
    plot_training_curves,
)

HEADER = "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\n"


@pytest.fixture
def figures(monkeypatch):
    """Figures passed to the writer, to look inside what was drawn."""
    return capture_saved_figures(monkeypatch, plots)


def texts(figure):
    return [t.get_text() for t in figure.texts]


def write_csv(path, rows, header=HEADER):
    path.write_text(header + "".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path


# -------------------------------------------------------------------------------------- confusion matrix


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix_png(tmp_path, normalize):
    matrix = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # last class has no examples: no division by zero
    out = plot_confusion_matrix(matrix, ["cat", "dog", "bird"], tmp_path / "cm.png", normalize=normalize)
    assert out == tmp_path / "cm.png"
    assert_png(out)
    folder_holds_only(tmp_path, "cm.png")


def test_confusion_matrix_thirty_classes(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 20, size=(30, 30)) + np.diag(np.full(30, 100))
    out = plot_confusion_matrix(matrix, [f"class_{i:02d}" for i in range(30)], tmp_path / "nested" / "cm.png")
    assert_png(out)
    folder_holds_only(tmp_path / "nested", "cm.png")


def test_confusion_matrix_rejects_mismatched_names(tmp_path):
    with pytest.raises(ValueError):
        plot_confusion_matrix(np.eye(3), ["a", "b"], tmp_path / "cm.png")
    with pytest.raises(ValueError):
        plot_confusion_matrix(np.ones((2, 3)), ["a", "b"], tmp_path / "cm.png")
    folder_holds_only(tmp_path)


def test_failed_render_keeps_old_png_and_leaves_no_temporaries(tmp_path, monkeypatch):
    target = tmp_path / "cm.png"
    plot_confusion_matrix(np.eye(2), ["a", "b"], target)
    before = target.read_bytes()

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError):
        plot_confusion_matrix(np.eye(2) * 3, ["a", "b"], target)
    assert target.read_bytes() == before
    folder_holds_only(tmp_path, "cm.png")


# --------------------------------------------------------------------------------------- training curves


def test_training_curves_two_phases_duplicate_epoch_and_missing_file(tmp_path, figures):
    head = write_csv(
        tmp_path / "head.csv",
        [(0, 0.5, 0.001, 1.2, 0.55, 1.1), (1, 0.6, 0.001, 1.0, 0.62, 0.9), (2, 0.7, 0.001, 0.8, 0.66, 0.85)],
    )
    # Fine-tuning continues the epoch numbers (initial_epoch=3) and was resumed: epoch 4 is logged twice,
    # the second row (after the resume) is the one that counts.
    fine = write_csv(
        tmp_path / "fine.csv",
        [
            (3, 0.72, 1e-5, 0.75, 0.70, 0.80),
            (4, 0.10, 1e-5, 9.99, 0.10, 9.99),
            (4, 0.80, 1e-5, 0.60, 0.74, 0.70),
            (5, 0.85, 1e-5, 0.50, 0.76, 0.65),
        ],
    )
    out = plot_training_curves(
        [("head", head), ("missing", tmp_path / "nope.csv"), ("fine_tune", str(fine))], tmp_path / "curves.png"
    )
    assert_png(out)
    folder_holds_only(tmp_path, "head.csv", "fine.csv", "curves.png")

    (figure,) = figures
    axes = {a.get_title(): a for a in figure.axes}
    assert list(axes) == ["loss", "accuracy"]  # learning_rate has no val_ twin; loss comes first
    loss = axes["loss"]
    lines = {line.get_label(): line for line in loss.get_lines() if not line.get_label().startswith("_")}
    train_x, train_y = lines["train"].get_data()
    keep = ~np.isnan(train_x)
    # global epochs 1-3 for the head, 4-6 for fine-tuning; the duplicated epoch keeps its last row
    np.testing.assert_array_equal(train_x[keep], [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(train_y[keep], [1.2, 1.0, 0.8, 0.75, 0.60, 0.50])
    _, val_y = lines["val"].get_data()
    np.testing.assert_allclose(val_y[keep], [1.1, 0.9, 0.85, 0.80, 0.70, 0.65])
    # one phase boundary, between global epochs 3 and 4
    boundaries = [line.get_xdata()[0] for line in loss.get_lines() if line.get_linestyle() == "--"]
    assert boundaries == [3.5]


def test_training_curves_phases_restarting_at_epoch_zero(tmp_path, figures):
    a = write_csv(tmp_path / "a.csv", [(0, 0.5, 0.1, 1.0, 0.5, 1.0), (1, 0.6, 0.1, 0.9, 0.6, 0.9)])
    b = write_csv(tmp_path / "b.csv", [(0, 0.7, 0.1, 0.8, 0.7, 0.8)])
    plot_training_curves([("a", a), ("b", b)], tmp_path / "curves.png")
    loss = next(ax for ax in figures[0].axes if ax.get_title() == "loss")
    x, _ = next(line for line in loss.get_lines() if line.get_label() == "train").get_data()
    np.testing.assert_array_equal(x[~np.isnan(x)], [1, 2, 3])


def test_training_curves_any_metric_names_and_no_val_twins(tmp_path, figures):
    # "auc" has a twin, "lr" and "val_only" do not: only loss and auc get subplots.
    paired = write_csv(
        tmp_path / "paired.csv",
        [(0, 0.9, 0.7, 0.01, 0.8, 0.6, 0.5)],
        header="epoch,loss,auc,lr,val_loss,val_auc,val_only\n",
    )
    plot_training_curves([("only", paired)], tmp_path / "paired.png")
    assert [a.get_title() for a in figures[-1].axes] == ["loss", "auc"]

    # Trained without validation data: no metric has a twin, the training metrics are drawn alone.
    train_only = write_csv(tmp_path / "train.csv", [(0, 1.0, 0.4), (1, 0.8, 0.5)], header="epoch,loss,accuracy\n")
    out = plot_training_curves([("head", train_only)], tmp_path / "train.png")
    assert_png(out)
    assert [a.get_title() for a in figures[-1].axes] == ["loss", "accuracy"]
    assert all(line.get_label() != "val" for a in figures[-1].axes for line in a.get_lines())
    folder_holds_only(tmp_path, "paired.csv", "paired.png", "train.csv", "train.png")


def test_training_curves_with_nothing_to_read(tmp_path, figures):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text(HEADER)
    out = plot_training_curves(
        [("a", tmp_path / "missing.csv"), ("b", tmp_path / "empty.csv"), ("c", tmp_path / "header_only.csv")],
        tmp_path / "curves.png",
    )
    assert_png(out)
    assert texts(figures[-1]) == ["no training history"]
    plot_training_curves([], tmp_path / "curves.png")  # overwrites in place
    assert_png(out)
    folder_holds_only(tmp_path, "empty.csv", "header_only.csv", "curves.png")


# ------------------------------------------------------------------------------------------- image grids


def test_image_grid_array_and_list(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 16, 16, 3), dtype=np.uint8)
    out = plot_image_grid(
        images, [f"image {i}" for i in range(7)], tmp_path / "grid.png", columns=3, title_colors=["green"] * 6 + ["red"]
    )
    assert_png(out)
    mixed = [images[0], rng.integers(0, 256, size=(10, 20), dtype=np.uint8), np.ones((8, 8, 1), np.uint8) * 200]
    assert_png(plot_image_grid(mixed, ["rgb", "gray", "one channel"], tmp_path / "mixed.png"))
    folder_holds_only(tmp_path, "grid.png", "mixed.png")


def test_image_grid_with_no_images(tmp_path, figures):
    out = plot_image_grid(np.zeros((0, 8, 8, 3), np.uint8), [], tmp_path / "grid.png")
    assert_png(out)
    assert texts(figures[-1]) == ["nothing to show"]
    folder_holds_only(tmp_path, "grid.png")


def test_image_grid_rejects_mismatched_titles(tmp_path):
    with pytest.raises(ValueError):
        plot_image_grid(np.zeros((2, 8, 8, 3), np.uint8), ["only one"], tmp_path / "grid.png")
    folder_holds_only(tmp_path)


def test_misclassified_most_confident_first(tmp_path, figures):
    names = ["cat", "dog", "bird"]
    images = np.zeros((5, 8, 8, 3), np.uint8)
    y_true = np.array([0, 1, 2, 0, 1])
    probabilities = np.array(
        [
            [0.90, 0.05, 0.05],  # right
            [0.60, 0.30, 0.10],  # wrong: cat at 0.60
            [0.05, 0.87, 0.08],  # wrong: dog at 0.87
            [0.20, 0.10, 0.70],  # wrong: bird at 0.70
            [0.10, 0.80, 0.10],  # right
        ]
    )
    y_pred = probabilities.argmax(axis=1)
    out = plot_misclassified(images, y_true, y_pred, probabilities, names, tmp_path / "wrong.png")
    assert_png(out)
    titles = [a.get_title() for a in figures[-1].axes]
    assert titles == ["true: bird\npred: dog (0.87)", "true: cat\npred: bird (0.70)", "true: dog\npred: cat (0.60)"]

    plot_misclassified(list(images), y_true, y_pred, probabilities, names, tmp_path / "top1.png", max_images=1)
    assert [a.get_title() for a in figures[-1].axes] == ["true: bird\npred: dog (0.87)"]
    folder_holds_only(tmp_path, "wrong.png", "top1.png")


def test_misclassified_without_mistakes_still_writes_png(tmp_path, figures):
    probabilities = np.eye(3)
    y = np.arange(3)
    out = plot_misclassified(
        np.zeros((3, 8, 8, 3), np.uint8), y, y, probabilities, ["a", "b", "c"], tmp_path / "wrong.png"
    )
    assert_png(out)
    assert texts(figures[-1]) == ["no misclassified examples"]
    folder_holds_only(tmp_path, "wrong.png")


def test_import_leaves_pyplot_and_backend_alone():
    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "import kerascv_tl.evaluation.plots\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
