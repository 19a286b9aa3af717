"""The model card in Markdown: `render_model_card(card)` turns a model_card.json dict into the README.md of an export
version folder (and the run folder's model_card.md).

Pure: no TensorFlow, no file access; everything it says comes from the card (`kerascv_tl.export.card`), so a card
of an older release, a hand-written one or one without an export section still renders (missing facts are left
out or said to be unknown). Task-specific wording comes from the card's own fields (the resize in words, the
export's outputs, the metrics), not from a table of tasks.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["render_model_card"]

LABELS_SHOWN = 60  # a card of 1000 ImageNet classes lists them in model_card.json, not on the page

# Weights files whose origin is known, by sha256 (`weights_source.sha256` of a local file): the ports of real
# pretrained weights the project's assets hold (../shared/assets/weights/*/SOURCE.txt).
KNOWN_WEIGHTS_FILES = {
    "0dff49c0b87c77b92b32be64546d42fbccba119a90075c9178b169e790520649": (
        "torchvision's MobileNetV2 ImageNet-1k weights (`mobilenet_v2-b0353104.pth`, IMAGENET1K_V1), ported to "
        "Keras without the classification top",
        "BSD-3-Clause (torchvision); ImageNet's terms of use cover the images they were trained on",
    ),
    "81aa54504813da4570a2145f7c736f673ab72b24ead356c4f271222ea52f5fa5": (
        "torchvision's MobileNetV2 ImageNet-1k weights (`mobilenet_v2-b0353104.pth`, IMAGENET1K_V1), ported to "
        "Keras with the 1000-class top",
        "BSD-3-Clause (torchvision); ImageNet's terms of use cover the images they were trained on",
    ),
}


def render_model_card(card: dict) -> str:
    """The card as a Markdown page: intended use, data, metrics, how to use, limitations, weights' origin and
    licence, software versions."""
    name = str(card.get("name") or "model")
    sections = [
        f"# {name}\n\n{_summary(card)}",
        _intended_use(card),
        _data(card),
        _metrics(card),
        _how_to_use(card, name),
        _limitations(card),
        _weights(card),
        _software(card),
    ]
    return "\n\n".join(section.rstrip() for section in sections) + "\n"


def _summary(card: dict) -> str:
    backbone = (card.get("backbone") or {}).get("name")
    parts = [f"A {_task(card)} model trained with kerascv-tl"]
    if backbone:
        parts.append(f" on a `{backbone}` backbone")
    if card.get("recipe"):
        parts.append(f" ({card['recipe']} recipe)")
    text = "".join(parts) + "."
    if card.get("created"):
        text += f" Created {card['created']}."
    export = card.get("export") or {}
    if export.get("format") in PORTABLE:
        inputs = export.get("input") or {}
        text += (
            f" This is its {PORTABLE[export['format']]} export `{export.get('file', 'model')}` (quantization: "
            f"{export.get('quantization', 'none')}). It takes {inputs.get('dtype', 'uint8')} RGB pixels "
            f"[batch, {export.get('image_size')}, {export.get('image_size')}, 3] already resized as described below "
            "(normalisation is inside) and returns the network's raw outputs; `kerascv_tl.load_predictor` adds the "
            "decoding, resizing and post-processing. The JSON file of the same name holds these facts for programs."
        )
        return text
    if export.get("format") == "preset":
        text += (
            f" This folder is its KerasHub preset (`keras_hub.models.{export.get('keras_hub_task')}.from_preset`), "
            "for training on or loading in Keras; `metadata.json` holds its class names."
        )
    if "version" in export:
        text += f" This folder is version {export['version']} of the SavedModel, for TF Serving."
    return text + " `model_card.json` beside this file holds the same facts for programs."


def _intended_use(card: dict) -> str:
    labels = [str(label) for label in card.get("labels") or []]
    shown = ", ".join(f"`{label}`" for label in labels[:LABELS_SHOWN])
    if len(labels) > LABELS_SHOWN:
        shown += f" and {len(labels) - LABELS_SHOWN} more (all of them in `model_card.json`)"
    lines = ["## Intended use", "", f"- **Task:** {_task(card)}"]
    lines.append(f"- **Labels ({len(labels)}):** {shown or 'not recorded'}")
    resize = _input(card).get("resize")
    export = card.get("export") if isinstance(card.get("export"), dict) else {}
    if export.get("format") == "preset":
        size = export.get("image_size")
        lines.append(
            f"- **Input:** float32 RGB pixels `[batch, {size}, {size}, 3]` in [0, 255] (the normalisation is the "
            "model's first layer), each image resized first" + (f" ({resize})." if resize else ".")
        )
    elif export.get("format") in PORTABLE:
        size, dtype = export.get("image_size"), (export.get("input") or {}).get("dtype", "uint8")
        lines.append(
            f"- **Input:** `pixels`, {dtype} RGB `[batch, {size}, {size}, 3]` in [0, 255]: each image decoded to RGB "
            "(JPEG EXIF orientation honoured, alpha dropped) and resized first" + (f" ({resize})." if resize else ".")
        )
    else:
        lines.append(
            "- **Input:** encoded image bytes of any size (JPEG, PNG, GIF, BMP or still WebP) to `serving_default`, "
            "or uint8 RGB pixels `[batch, height, width, 3]` to `serving_images`. The graph decodes each image to "
            "RGB (JPEG EXIF orientation honoured, alpha dropped)" + (f" and resizes it: {resize}." if resize else ".")
        )
    outputs = _outputs(card)
    if outputs:
        lines.append(f"- **Outputs:** {', '.join(f'`{o}`' for o in outputs)}")
    lines.append(
        "- **Meant for:** images like the ones it was trained on (see Data and Limitations), labelled with the "
        "classes above."
    )
    return "\n".join(lines)


def _data(card: dict) -> str:
    data = card.get("data") or {}
    lines = ["## Data", ""]
    for key, title in (("train", "Training"), ("val", "Validation")):
        if data.get(key) is None and f"{key}_images" not in data:
            continue
        count = f" ({data[f'{key}_images']} images)" if f"{key}_images" in data else ""
        lines.append(f"- **{title}:** `{data.get(key)}`{count}")
    facts = [f"recipe `{card['recipe']}`"] if card.get("recipe") else []
    if card.get("precision"):
        facts.append(f"precision `{card['precision']}`")
    if _input(card).get("image_size"):
        facts.append(f"image size {_input(card)['image_size']} px")
    if card.get("training_time_s") is not None:
        facts.append(f"{card['training_time_s']} s of training")
    if facts:
        lines.append(f"- **Run:** {', '.join(facts)}")
    if len(lines) == 2:
        lines.append("Not recorded in this card.")
    return "\n".join(lines)


def _metrics(card: dict) -> str:
    metrics = card.get("metrics") or {}
    if not metrics:
        return "## Metrics\n\nNone recorded in this card."
    val_count = (card.get("data") or {}).get("val_images")
    where = f"the validation data ({val_count} images)" if val_count is not None else "the validation data"
    lines = [
        "## Metrics",
        "",
        f"Measured on {where} at the end of training.",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    for key, value in metrics.items():
        if isinstance(value, dict):
            lines += [f"| {key}: {sub} | {_figure(v)} |" for sub, v in value.items()]
        else:
            lines.append(f"| {key} | {_figure(value)} |")
    return "\n".join(lines)


def _how_to_use(card: dict, name: str) -> str:
    """Three ready-to-paste examples (TF Serving REST, the CLI, Python), each needing the model's folder."""
    export = card.get("export")
    if isinstance(export, dict) and export.get("format") in PORTABLE:
        return _how_to_use_portable(export)
    if isinstance(export, dict) and export.get("format") == "preset":
        return _how_to_use_preset(export)
    if export is None:
        where = f"path/to/{card.get('run_dir') or name}"
        intro = (
            f"This is a run folder's card. `kerascv-tl export {where}` writes the SavedModel for TF Serving (with "
            "this card as its README.md); prediction also works on the run folder itself:"
        )
        serving = ""
    else:
        base = export.get("base_folder") or name  # the folder TF Serving is pointed at; its name is its model name
        where = f"path/to/{base}"
        intro = (
            f"`{where}` is the model's base folder: the one holding this version folder (`{export.get('version', 1)}`"
            "); TF Serving and kerascv-tl take its highest version."
        )
        serving = (
            '\n\nTF Serving\'s REST API takes binary inputs as `{"b64": ...}` for inputs whose name ends in '
            '"_bytes":\n\n```bash\n'
            f'docker run -p 8501:8501 -v "$PWD/{where}:/models/{base}" -e MODEL_NAME={base} tensorflow/serving\n'
            f"curl -s http://localhost:8501/v1/models/{base}:predict \\\n"
            '  -d "{\\"instances\\": [{\\"image_bytes\\": {\\"b64\\": \\"$(base64 -w0 photo.jpg)\\"}}]}"\n```'
        )
    cli = f"```bash\nkerascv-tl predict {where} photo.jpg more_photos/\n```"
    python = (
        "```python\nimport kerascv_tl\n\n"
        f'predictor = kerascv_tl.load_predictor("{where}")\n'
        'results = predictor.predict(["photo.jpg", "other.png"])  # one result per image, in order\n```'
    )
    return f"## How to use\n\n{intro}{serving}\n\nFrom the command line:\n\n{cli}\n\nFrom Python:\n\n{python}"


def _how_to_use_portable(export: dict) -> str:
    """The CLI and Python on the file, and the bare runtime for an app (which must prepare the pixels itself)."""
    where = f"path/to/{export.get('file', 'model')}"
    size = export.get("image_size")
    outputs = "\n".join(f"- `{key}`: {doc}" for key, doc in (export.get("outputs") or {}).items())
    if export.get("format") == "litert":
        runtime = (
            "```python\nfrom ai_edge_litert.interpreter import Interpreter\n\n"
            f'runner = Interpreter(model_path="{where}").get_signature_runner()\n'
            f"outputs = runner(pixels=pixels)  # uint8 [batch, {size}, {size}, 3]\n```"
        )
    else:
        runtime = (
            "```python\nimport onnxruntime\n\n"
            f'session = onnxruntime.InferenceSession("{where}")\n'
            f'outputs = session.run(None, {{"pixels": pixels}})  # uint8 [batch, {size}, {size}, 3]\n```'
        )
    return (
        "## How to use\n\nWith kerascv-tl (image files in, the same results as the SavedModel's):\n\n"
        f"```bash\nkerascv-tl predict {where} photo.jpg more_photos/\n```\n\n"
        f'```python\nimport kerascv_tl\n\nresults = kerascv_tl.load_predictor("{where}").predict(["photo.jpg"])\n```'
        "\n\nIn an app, with the runtime alone, prepare the pixels as the input section says, then:\n\n"
        f"{runtime}\n\nOutputs:\n\n{outputs}"
    )


def _how_to_use_preset(export: dict) -> str:
    """KerasHub's loader, a run that starts from the preset, and KerasHub's upload call."""
    where = f"path/to/{export.get('folder', 'preset')}"
    size = export.get("image_size")
    family = export.get("keras_hub_task", "ObjectDetector")
    return (
        "## How to use\n\nA KerasHub preset folder. Load it with KerasHub (kerascv-tl's classes register on import):"
        "\n\n```python\nimport keras_hub\nimport kerascv_tl.tasks  # noqa: F401  (registers its classes)\n\n"
        f'model = keras_hub.models.{family}.from_preset("{where}")\n'
        f"outputs = model.predict(pixels)  # RGB in [0, 255], float32 [batch, {size}, {size}, 3]\n```\n\n"
        "Start another run from it (its class names, in metadata.json, guide the head surgery):\n\n"
        f"```bash\nkerascv-tl train my_recipe.yaml --set model.preset={where}\n```\n\n"
        f'Publish it: `keras_hub.upload_preset("kaggle://USER/MODEL/keras/VARIANT", "{where}")` (or an `hf://` URI).'
    )


def _limitations(card: dict) -> str:
    """One bullet per caveat the card's facts support (data size, classes, resize, decoding, threshold)."""
    labels = card.get("labels") or []
    data = card.get("data") or {}
    size = _input(card).get("image_size")
    resize = str(_input(card).get("resize") or "")
    trained_on = f"{data['train_images']} images" if "train_images" in data else "the training images"
    lines = [
        "## Limitations",
        "",
        f"- Trained on {trained_on} of these {len(labels)} classes, and it knows no others: an image of something "
        "else still gets an answer in terms of these classes (the closest ones, or none); the model cannot say "
        "that it does not know.",
        "- Its figures hold for images like the training data's. Other cameras, lighting, viewpoints, sources or "
        "domains (medical, satellite, drawings, ...) are untested: measure it on labelled images of your own "
        "(`kerascv-tl evaluate MODEL --data DIR`) before relying on it.",
    ]
    if "val_images" in data:
        lines.append(
            f"- The metrics come from {data['val_images']} validation images drawn from the same collection as the "
            "training images; on few images each figure is uncertain, and on other data it can be lower."
        )
    if "threshold" in (card.get("metrics") or {}):
        lines.append(
            "- The decision threshold was tuned on the validation images, so the figures measured at it there are "
            "optimistic."
        )
    if size:
        lines.append(
            f"- Every image is seen at {size}x{size} pixels: details only a few pixels wide at that size are lost."
        )
    if "centre crop" in resize:
        lines.append("- The centre crop drops the image's borders: what appears only near an edge is not seen.")
    if "letterbox" in resize:
        lines.append(
            "- Images are letterboxed (padded) to a square: a very wide or tall image leaves its content few "
            "pixels, and small objects may be missed."
        )
    if "stretch" in resize:
        lines.append("- Images are stretched to a square: a very wide or tall image is seen distorted.")
    lines.append(
        "- Decoding: only JPEG's EXIF orientation is applied (other formats are taken as stored); a GIF gives its "
        "first frame; animated WebP is refused; transparency is dropped (transparent areas show the colour they "
        "store)."
    )
    return "\n".join(lines)


def _weights(card: dict) -> str:
    backbone = card.get("backbone") or {}
    origin, licence = _weights_origin(backbone.get("weights_source"))
    lines = ["## Weights' origin and licence", ""]
    pooling = f" (pooling `{backbone['pooling']}`)" if backbone.get("pooling") else ""
    lines.append(f"- **Backbone:** `{backbone.get('name') or 'unknown'}`{pooling}")
    lines.append(f"- **Starting weights:** {origin}")
    lines.append(f"- **Their licence:** {licence}")
    preprocessing = card.get("preprocessing")
    if isinstance(preprocessing, dict):
        shown = {k: preprocessing[k] for k in ("scale", "mean", "std", "channel_order") if k in preprocessing}
        source = f" ({preprocessing['source']})" if preprocessing.get("source") else ""
        lines.append(f"- **Pixel preprocessing:** `{json.dumps(shown)}`{source}")
    lines.append(
        "- **This model's weights** were trained by kerascv-tl from the starting weights on the data above: whoever "
        "publishes them should check the starting weights' licence and the training data's terms."
    )
    return "\n".join(lines)


def _weights_origin(source: Any) -> tuple[str, str]:
    """(where the starting weights came from, their licence) from `weights_source`; "unknown" when not known."""
    if not isinstance(source, dict):
        return "not recorded", "unknown"
    kind = source.get("kind")
    if kind == "none":
        wanted = source.get("wanted")
        missing = f" (the weights file `{wanted}` was not found: backbone.fallback_to_random)" if wanted else ""
        return f"none: random initialisation{missing}", "none needed (no pretrained weights)"
    if kind == "imagenet":
        return (
            f"ImageNet-1k weights of Keras Applications, `{source.get('loader', 'keras.applications')}`",
            "published by the Keras team with Keras Applications (Keras: Apache-2.0); the weights come from the "
            "model's original release (see its paper and the Keras Applications documentation), whose terms may "
            "also apply; ImageNet's terms of use cover the images they were trained on",
        )
    if kind == "preset":
        model_class = f" ({source['class']})" if source.get("class") else ""
        return (
            f"KerasHub preset `{source.get('handle')}`{model_class}",
            "unknown here: stated on the preset's model page (Kaggle Models or Hugging Face) or in its folder",
        )
    if kind == "file":
        known = KNOWN_WEIGHTS_FILES.get(str(source.get("sha256")))
        sha = f" (sha256 `{source['sha256']}`)" if source.get("sha256") else ""
        if known is not None:
            return f"{known[0]}: file `{source.get('path')}`{sha}", known[1]
        return f"a local weights file `{source.get('path')}`{sha}", "unknown (not recorded with the file)"
    return f"`{json.dumps(source)}`", "unknown"


def _software(card: dict) -> str:
    software = card.get("software") or {}
    if not software:
        return "## Software versions\n\nNot recorded in this card."
    rows = [f"| {name} | {version if version is not None else 'not installed'} |" for name, version in software.items()]
    return "\n".join(["## Software versions", "", "| package | version |", "| --- | --- |", *rows])


PORTABLE = {"litert": "LiteRT (TensorFlow Lite)", "onnx": "ONNX"}


def _task(card: dict) -> str:
    return str(card.get("task") or "image").replace("_", "-")


def _input(card: dict) -> dict:
    return card.get("input") if isinstance(card.get("input"), dict) else {}


def _outputs(card: dict) -> list[str]:
    export = card.get("export") or {}
    if export.get("format") in PORTABLE:
        return [str(name) for name in export.get("outputs") or {}]
    signatures = export.get("signatures") or {}
    outputs = (signatures.get("serving_default") or {}).get("outputs")
    return [str(o) for o in outputs] if isinstance(outputs, list) else []


def _figure(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
