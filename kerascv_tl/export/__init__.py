"""Export: SavedModels for TF Serving that take encoded image bytes, and model cards."""

from kerascv_tl.export.savedmodel import (
    export_classifier,
    export_detector,
    export_segmenter,
    latest_version_dir,
    load_serving,
)

__all__ = ["export_classifier", "export_detector", "export_segmenter", "latest_version_dir", "load_serving"]
