"""`load_predictor(path).predict(inputs)`: a trained model's results for image files, bytes or arrays.

A SavedModel's predictions run through its `serving_default` signature (encoded bytes in, the task's outputs
out), the graph TF Serving runs: decoding, resizing, the network and the task's post-processing (top-k, the
multi-label threshold, box decoding and NMS in original pixels, class maps at the original size) all happen
there, and the task turns its outputs into one result dict per image (`Task.prediction_rows`). A LiteRT
(.tflite) or ONNX (.onnx) export holds the network only; the same decoding, preparation and post-processing
functions run around it (`kerascv_tl.predict.runtimes`), so its results have the same form.

A finished run folder is exported into a temporary folder with the task's own `export` (what
`kerascv-tl export` writes), loaded, and the folder deleted. That costs the export's seconds (about 7 s for a
tiny model, 10-15 s for ResNet-50 or EfficientNet-B0 on a CPU) but leaves ONE code path for pre- and
post-processing: building the serving functions in memory instead would need either Keras' private
ExportArchive attributes or a change to every exporter (they trace while writing, and the detector swaps in
its export-time box decoder only until the archive is written), and a second path could drift from the
export without any test noticing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kerascv_tl.data.errors import DataError
from kerascv_tl.predict.inputs import encode_input, input_name, is_path_input

__all__ = ["DEFAULT_TOP_K", "PredictionResult", "Predictor", "load_predictor"]

DEFAULT_TOP_K = 5  # classification's top-k when the model card does not say (config export.top_k's default)


@dataclass
class PredictionResult:
    """One input's outcome: its `row` (the task's result dict, with "path" for a file), or the `problem`."""

    index: int
    name: str  # the path, or "input N (bytes)" / "input N (array)", for messages
    path: str | None  # the input as given when it is a path
    row: dict | None = None
    problem: str | None = None


class Predictor:
    """An exported model ready to predict; made by `load_predictor`.

    Attributes: `task` (the task's name: "classification", "multi_label", "detection" or "segmentation"),
    `class_names` (label order), `card` (the export's model card, a dict), `folder` (the SavedModel version
    folder, the run folder it was exported from, or the .tflite / .onnx file), `format` ("savedmodel",
    "litert" or "onnx").
    """

    def __init__(self, serving: Any, card: dict, folder: Path):
        from kerascv_tl.tasks.registry import get_task

        self.serving = serving  # encoded images -> the task's outputs (kerascv_tl.predict.runtimes)
        self.card = card
        self.format = str(card.get("export", {}).get("format", "savedmodel"))
        self.folder = Path(folder)
        self.task = str(card.get("task", "classification"))
        self.class_names = list(card["labels"])
        self.hooks = get_task(self.task)  # the Task: how rows, CSV columns, text and files are made
        self.top_k = int(card.get("export", {}).get("top_k", DEFAULT_TOP_K))
        self.max_batch = int(card.get("export", {}).get("max_batch") or 1 << 31)

    def __repr__(self) -> str:
        return (
            f"Predictor(task={self.task!r}, classes={len(self.class_names)}, format={self.format!r}, "
            f"folder={str(self.folder)!r})"
        )

    def predict(self, inputs: Any, batch_size: int = 32, top_k: int | None = None, errors: str = "raise") -> list:
        """One result dict per input, in input order.

        `inputs`: one input or a list of them; an input is a file path (str or pathlib.Path), encoded image bytes
        (JPEG, PNG, GIF, BMP, WebP), or a numpy uint8 RGB array [height, width, 3] (a 4-D array is a list of
        images). They run `batch_size` at a time through the SavedModel's `serving_default`.

        Every result has "path" (the input as given) when the input was a path, and per task:
          classification  "labels": the `top_k` most probable class names, best first (default: the export's
                          top_k, else 5); "scores": their probabilities
          multi_label     "labels": the classes at or above the exported threshold, most probable first;
                          "scores": their probabilities; "threshold"; "probabilities": {class: probability}
          detection       "num_boxes"; "boxes": [{"label", "score", "box": [x0, y0, x1, y1]}] in the
                          original image's pixels, best first (the export's score threshold and NMS applied)
          segmentation    "width", "height"; "class_fractions": {class: fraction of the pixels};
                          "mask": numpy int32 [height, width], each pixel's class id, original resolution

        `errors="raise"` (default): a bad input (missing file, not an image, truncated, a decompression bomb,
        a wrong array) raises DataError naming it. `errors="report"`: its result is {"error": message} (plus
        "path" for a path) and the others are predicted.
        """
        if errors not in ("raise", "report"):
            raise ValueError(f'errors must be "raise" or "report", got {errors!r}')
        results = []
        for result in self.results(_as_list(inputs), batch_size, top_k):
            if result.problem is None:
                results.append(result.row)
            elif errors == "raise":
                raise DataError(f"{result.name}: {result.problem}", path=result.name)
            else:
                results.append(_error_row(result))
        return results

    def results(self, inputs: list, batch_size: int = 32, top_k: int | None = None) -> Iterator[PredictionResult]:
        """A PredictionResult per input, in order, a batch at a time: the CLI's loop (bad inputs do not stop it)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch_size = min(batch_size, self.max_batch)  # a SavedModel refuses larger requests (export.max_batch)
        top_k = self.top_k if top_k is None else top_k
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        for start in range(0, len(inputs), batch_size):
            batch = [
                PredictionResult(i, input_name(i, item), str(item) if is_path_input(item) else None)
                for i, item in enumerate(inputs[start : start + batch_size], start)
            ]
            encoded: list[tuple[PredictionResult, bytes]] = []
            for result in batch:
                data, result.problem = encode_input(inputs[result.index])
                if data is not None:
                    encoded.append((result, data))
            for (result, _), outcome in zip(encoded, self._serve_all([data for _, data in encoded], top_k)):
                if isinstance(outcome, str):
                    result.problem = outcome
                else:
                    result.row = outcome if result.path is None else {"path": result.path, **outcome}
            yield from batch

    def _serve_all(self, encoded: list[bytes], top_k: int) -> list[dict | str]:
        """Rows for the encoded images, or for each image that the graph cannot decode, the decoder's message.

        The whole batch goes through one call; only when that call fails are the images sent one by one, so that
        a file the PIL check let through but TensorFlow refuses costs its own row and not its batch's."""
        import tensorflow as tf

        if not encoded:
            return []
        try:
            return self._rows(encoded, top_k)
        except tf.errors.InvalidArgumentError as e:
            if len(encoded) == 1:
                return [_decode_message(e)]
        outcomes: list[dict | str] = []
        for data in encoded:
            try:
                outcomes += self._rows([data], top_k)
            except tf.errors.InvalidArgumentError as e:
                outcomes.append(_decode_message(e))
        return outcomes

    def _rows(self, encoded: list[bytes], top_k: int) -> list[dict]:
        return self.hooks.prediction_rows(self.serving(encoded), self.card, top_k)


def load_predictor(path: str | Path, num_threads: int | None = None) -> Predictor:
    """A Predictor for an exported SavedModel (base folder: its highest version; or a version folder), a LiteRT
    .tflite or ONNX .onnx export (its card `<stem>.json` beside it; run with `num_threads`, default all cores),
    or a finished run folder (one with model.keras: exported into a temporary folder first, see the module doc).
    """
    import tensorflow as tf

    from kerascv_tl.export.serving import latest_version_dir
    from kerascv_tl.predict.runtimes import SavedModelServing

    path = Path(path)
    if path.suffix in (".tflite", ".onnx"):
        return _portable_predictor(path, num_threads)
    if (path / "model.keras").is_file():
        return _run_predictor(path)
    folder = latest_version_dir(path)
    card = _read_card(folder / "model_card.json")
    return Predictor(SavedModelServing(tf.saved_model.load(str(folder))), card, folder)


def _portable_predictor(path: Path, num_threads: int | None) -> Predictor:
    from kerascv_tl.predict.runtimes import LiteRTRuntime, OnnxRuntime, PortableServing
    from kerascv_tl.tasks.registry import get_task

    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    card = _read_card(path.with_suffix(".json"))
    runtime = (LiteRTRuntime if path.suffix == ".tflite" else OnnxRuntime)(path, num_threads)
    steps = get_task(card.get("task", "classification")).serving_steps(card["labels"], card.get("export", {}))
    return Predictor(PortableServing(runtime, steps), card, path)


def _run_predictor(run_dir: Path) -> Predictor:
    import tensorflow as tf

    from kerascv_tl.export.run_export import export_run
    from kerascv_tl.predict.runtimes import SavedModelServing

    with tempfile.TemporaryDirectory(prefix="kerascv-tl-predict-") as tmp:
        # Loading reads the variables into memory, so the temporary export can go once it is loaded.
        folder = export_run(run_dir, Path(tmp) / "model")
        loaded = tf.saved_model.load(str(folder))
        card = _read_card(folder / "model_card.json")
    return Predictor(SavedModelServing(loaded), card, Path(run_dir))


def _read_card(path: Path) -> dict:
    from kerascv_tl.tasks.registry import task_names

    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; predict reads the task and the labels from the model card")
    card = json.loads(path.read_text())
    if card.get("task", "classification") not in task_names() or not isinstance(card.get("labels"), list):
        raise DataError(f"{path}: needs a known task ({', '.join(task_names())}) and a list of labels", path=path)
    return card


def _as_list(inputs: Any) -> list:
    if isinstance(inputs, np.ndarray):
        return list(inputs) if inputs.ndim == 4 else [inputs]
    if isinstance(inputs, (str, bytes, bytearray, memoryview)) or is_path_input(inputs):
        return [inputs]
    return list(inputs)


def _error_row(result: PredictionResult) -> dict:
    return ({} if result.path is None else {"path": result.path}) | {"error": result.problem}


def _decode_message(error: Any) -> str:
    return f"cannot decode image ({error.message.splitlines()[0][:120]})"
