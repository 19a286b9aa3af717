"""Tiny finished runs for the prediction tests, written without training (seconds instead of a fit)."""

from __future__ import annotations

from pathlib import Path

from support import tiny_overrides

CLASSES = ["circle", "square", "triangle"]
BACKBONE = "hub_resnet18"  # exports in about half MobileNetV2's time (fewer layers to trace)


def classification_run(root: Path, shapes: Path) -> Path:
    """A finished classification run folder (config, class names, model.keras, metrics, model card) whose random-init
    model gives different classes to different images (`spread_scores`)."""
    from kerascv_tl.config import load_config
    from kerascv_tl.export.card import model_card
    from kerascv_tl.run_folder import RunFolder
    from kerascv_tl.tasks import classifier
    from kerascv_tl.tasks.registry import get_task
    from kerascv_tl.utils.io import atomic_write_json

    config = load_config(None, tiny_overrides(shapes, recipe="feature_extraction", **{"backbone.name": BACKBONE}))
    model = classifier(BACKBONE, len(CLASSES), weights="none", image_size=32)
    spread_scores(model, image_files(shapes))
    run = RunFolder(root)
    run.prepare(config)
    run.save_class_names(CLASSES)
    run.save_model(model)
    atomic_write_json(run / "metrics.json", {"accuracy": 0.5, "num_examples": 12})
    resize = get_task("classification").serving_resize(config)
    run.write_model_card(model_card(config, CLASSES, {"name": BACKBONE}, resize, {"accuracy": 0.5}, str(root)))
    return root


def spread_scores(model, paths: list[Path], seed: int = 0) -> None:
    """Sets the output layer so that `paths` get logits of spread about 3: a random-init backbone's pooled features
    are small and alike (about 1e-12 for MobileNetV2, 0.08 for ResNet-18), so a fresh head scores every image
    nearly alike and comparing top-1 labels would prove little."""
    import numpy as np
    from PIL import Image

    from kerascv_tl.tasks import feature_extractor

    size = int(model.input_shape[1])
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in paths])
    features = feature_extractor(model).predict(images.astype("float32"), verbose=0).astype("float64")
    centred = features - features.mean(axis=0)
    kernel = np.random.default_rng(seed).normal(size=(features.shape[1], len(CLASSES)))
    kernel *= 3.0 / (np.std(centred @ kernel) + 1e-30)
    model.get_layer("predictions").set_weights(
        [kernel.astype("float32"), (-features.mean(axis=0) @ kernel).astype("float32")]
    )


def image_files(shapes: Path, split: str = "val") -> list[Path]:
    return sorted((shapes / split).rglob("*.png"))
