"""The embedded "shapes" dataset: deterministic synthetic images for all three tasks.

One renderer (`render.render_shapes`) draws filled circles, squares and triangles on varied backgrounds
and returns, with every image, the exact class ids, boxes, instance mask and semantic mask. The writers
(`writers`) put classification, detection (COCO JSON) and segmentation (class-index PNG) datasets on disk;
`command.main` is `python -m kerascv_tl.data.synthetic`.

Only numpy and PIL are used here (no TensorFlow), so importing this package is fast.

Each writer records its arguments in `ROOT/shapes_manifest.json`, written last and atomically; a call
whose manifest is already there returns at once, a call with other arguments rewrites the dataset.
"""

from kerascv_tl.data.synthetic.command import main
from kerascv_tl.data.synthetic.render import (
    SHAPE_CLASSES,
    SPLITS,
    STREAM_CLASSIFICATION,
    STREAM_SCENES,
    ShapesSample,
    classification_sample,
    image_hw,
    image_rng,
    is_empty_scene,
    render_shapes,
    scene_sample,
)
from kerascv_tl.data.synthetic.writers import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    begin_dataset,
    dataset_manifest,
    finish_dataset,
    save_png,
    scene_args,
    size_arg,
    write_classification_dataset,
    write_detection_dataset,
    write_segmentation_dataset,
)

__all__ = [
    "SHAPE_CLASSES",
    "SPLITS",
    "STREAM_CLASSIFICATION",
    "STREAM_SCENES",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "ShapesSample",
    "begin_dataset",
    "classification_sample",
    "dataset_manifest",
    "finish_dataset",
    "image_hw",
    "image_rng",
    "is_empty_scene",
    "main",
    "render_shapes",
    "save_png",
    "scene_args",
    "scene_sample",
    "size_arg",
    "write_classification_dataset",
    "write_detection_dataset",
    "write_segmentation_dataset",
]
