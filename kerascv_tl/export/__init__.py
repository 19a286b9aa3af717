"""Export: SavedModels for TF Serving that take encoded image bytes (one module per model kind), and model cards."""

from kerascv_tl.export.classifier import export_classifier
from kerascv_tl.export.detector import export_detector
from kerascv_tl.export.segmenter import export_segmenter
from kerascv_tl.export.serving import latest_version_dir, load_serving, write_versioned

__all__ = [
    "export_classifier",
    "export_detector",
    "export_segmenter",
    "latest_version_dir",
    "load_serving",
    "write_versioned",
]
