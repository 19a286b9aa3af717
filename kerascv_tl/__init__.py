"""kerascv-tl: transfer learning for computer vision on Keras 3 + TensorFlow."""

__version__ = "0.1.0"

# The documented entry points (`kerascv_tl.classifier(...)`), imported on first use so that
# `import kerascv_tl` stays cheap (no TensorFlow import).
_LAZY = {
    "classifier": "kerascv_tl.tasks",
    "detector": "kerascv_tl.tasks",
    "segmenter": "kerascv_tl.tasks",
    "feature_extractor": "kerascv_tl.tasks",
    "head_model": "kerascv_tl.tasks",
    "freeze_backbone": "kerascv_tl.tasks",
    "unfreeze_backbone": "kerascv_tl.tasks",
    "build_backbone": "kerascv_tl.backbones",
    "list_backbones": "kerascv_tl.backbones",
    "load_config": "kerascv_tl.config",
    "load_predictor": "kerascv_tl.predict",
    "Predictor": "kerascv_tl.predict",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kerascv_tl' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
