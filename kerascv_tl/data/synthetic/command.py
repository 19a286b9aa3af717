"""`python -m kerascv_tl.data.synthetic {classification,detection,segmentation} ROOT`: write a shapes dataset."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kerascv_tl.data.synthetic.writers import (
    write_classification_dataset,
    write_detection_dataset,
    write_segmentation_dataset,
)

__all__ = ["WRITERS", "main"]

# Task name on the command line -> writer (each takes the root, `seed=` and `image_size=`).
WRITERS: dict[str, Callable[..., Path]] = {
    "classification": write_classification_dataset,
    "detection": write_detection_dataset,
    "segmentation": write_segmentation_dataset,
}


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: `python -m kerascv_tl.data.synthetic {classification,detection,segmentation} ROOT`."""
    parser = argparse.ArgumentParser(
        prog="python -m kerascv_tl.data.synthetic", description="Write the synthetic shapes dataset."
    )
    parser.add_argument("task", choices=sorted(WRITERS))
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=None, help="square side in pixels (task default if omitted)")
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {"seed": args.seed}
    if args.image_size is not None:
        kwargs["image_size"] = args.image_size
    path = WRITERS[args.task](args.root, **kwargs)
    print(path)
