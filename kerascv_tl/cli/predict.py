"""`kerascv-tl predict` and `kerascv-tl backbones`."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parsers(sub, common) -> None:
    p = sub.add_parser(
        "predict",
        parents=[common],
        help="run images through an exported SavedModel (classes, labels, boxes or masks)",
    )
    p.add_argument("model", help="SavedModel (base or version folder)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top-k", type=int, default=3, help="classification: how many classes to print")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    p.add_argument(
        "--output-dir", default="predictions", help="detection and segmentation: where the annotated copies go"
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "backbones", parents=[common], help="list registered backbones with parameter counts and input sizes"
    )
    p.set_defaults(func=cmd_backbones)


def cmd_predict(args) -> int:
    import tensorflow as tf

    from kerascv_tl.data.image_check import bomb_problem
    from kerascv_tl.export import load_serving
    from kerascv_tl.tasks.registry import get_task

    loaded, folder = load_serving(args.model)
    serve = loaded.signatures["serving_default"]
    card = json.loads((folder / "model_card.json").read_text())
    task = get_task(card.get("task", "classification"))
    failures = 0
    for image in args.images:
        path = Path(image)
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            failures += 1
            continue
        bomb = bomb_problem(path)
        if bomb is not None:
            print(f"error: {path}: {bomb}", file=sys.stderr)
            failures += 1
            continue
        try:
            out = serve(image_bytes=tf.constant([path.read_bytes()]))
        except tf.errors.InvalidArgumentError as e:
            print(f"error: {path}: cannot decode image ({e.message.splitlines()[0][:120]})", file=sys.stderr)
            failures += 1
            continue
        task.print_prediction(path, out, card, args)
    return 2 if failures else 0


def cmd_backbones(args) -> int:
    from kerascv_tl.backbones import REGISTRY

    print(f"{'name':<20} {'source':<20} {'params':>12} {'input':>7}  {'pooling':<7} {'pyramid':<9} preprocessing")
    for name, spec in REGISTRY.items():
        params = spec.build(spec.default_image_size, None).count_params()
        pyramid = "/".join(str(s) for s in spec.pyramid_strides) or "-"
        print(
            f"{name:<20} {spec.source:<20} {params:>12,} {spec.default_image_size:>7}  {spec.pooling:<7} "
            f"{pyramid:<9} {spec.preprocessing.source}"
        )
    return 0
