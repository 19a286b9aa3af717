"""The multi-label shapes dataset: several shapes per image, labelled with the set of shape classes present.

    ROOT/images/{train,val}/00000.png
    ROOT/train.csv, ROOT/val.csv        path,labels rows, e.g. images/train/00000.png,circle|triangle
    ROOT/shapes_manifest.json

Each image draws 1..`max_shapes` shapes of random classes (`render_shapes`), so one image may hold two
circles and a square (labels circle|square); one image in ten holds none (`is_empty_scene`; empty labels).
Its labels are the classes of the shapes `render_shapes` kept visible, so pixels and labels agree exactly.
Every image has its own generator (`image_rng` on its own stream), so `multi_label_sample` re-renders what
the writer wrote. Like the other writers, the arguments are recorded in the manifest and a second call with
the same arguments returns at once. `python -m kerascv_tl.data.synthetic multi_label ROOT` runs it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from kerascv_tl.data.synthetic.render import (
    SHAPE_CLASSES,
    STREAM_MULTI_LABEL,
    ShapesSample,
    image_rng,
    is_empty_scene,
    render_shapes,
)
from kerascv_tl.data.synthetic.writers import (
    INCOMPLETE_MARKER,
    MANIFEST_NAME,
    begin_dataset,
    dataset_manifest,
    finish_dataset,
    save_png,
    scene_args,
)
from kerascv_tl.utils.io import atomic_write_text

__all__ = ["multi_label_sample", "sample_labels", "write_multi_label_dataset"]

SIZE_FRACTIONS = (0.2, 0.45)  # shape sizes as fractions of the shorter side: several fit, each recognisable
CSV_FILES = ("train.csv", "val.csv")


def multi_label_sample(
    seed: int, split: str, index: int, image_size: int | tuple[int, int] = 96, max_shapes: int = 3
) -> ShapesSample:
    """The image `write_multi_label_dataset` writes as `images/<split>/<index:05d>.png`."""
    if max_shapes < 1:
        raise ValueError(f"max_shapes must be at least 1, got {max_shapes}")
    rng = image_rng(seed, STREAM_MULTI_LABEL, split, int(index))
    num_shapes = 0 if is_empty_scene(index) else int(rng.integers(1, max_shapes + 1))
    return render_shapes(rng, image_size, num_shapes, None, *SIZE_FRACTIONS)


def sample_labels(sample: ShapesSample) -> list[str]:
    """The sorted names of the shape classes visible in `sample` (each once)."""
    return sorted({SHAPE_CLASSES[int(c)] for c in sample.class_ids})


def write_multi_label_dataset(
    root: str | Path,
    num_train: int = 480,
    num_val: int = 120,
    image_size: int | tuple[int, int] = 96,
    max_shapes: int = 3,
    seed: int = 0,
) -> Path:
    """Writes the images, `ROOT/train.csv` and `ROOT/val.csv` (see the module docstring); returns `root`."""
    root = Path(root)
    owned = (root / MANIFEST_NAME).is_file() or (root / INCOMPLETE_MARKER).exists()
    clashes = [name for name in CSV_FILES if (root / name).exists()]
    if clashes and not owned:  # the shared writers own images/, not these: never overwrite someone's lists
        raise FileExistsError(
            f"{root} holds {clashes} but no {MANIFEST_NAME}: not a shapes dataset, refusing to overwrite"
        )
    manifest = dataset_manifest("multi_label", scene_args(num_train, num_val, image_size, max_shapes, seed))
    if begin_dataset(root, manifest):
        return root
    for split, count in (("train", num_train), ("val", num_val)):
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["path", "labels"])
        for index in range(count):
            sample = multi_label_sample(seed, split, index, image_size, max_shapes)
            relative = f"images/{split}/{index:05d}.png"
            save_png(root / relative, sample.image)
            writer.writerow([relative, "|".join(sample_labels(sample))])
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / f"{split}.csv", text.getvalue())
    return finish_dataset(root, manifest)
