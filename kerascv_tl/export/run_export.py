"""Exporting a finished run folder: the functions `kerascv-tl export`, `train --export`, the demo and
`load_predictor(run folder)` call.

Where each format goes (BASE = `--output`, default `<export.dir>/<export.name or the run's name>`):
  savedmodel  BASE/<version>/ (TF Serving's layout)
  litert      BASE_litert/<name>_<float32|float16|dynamic|int8>.tflite + its card <stem>.json
  onnx        BASE_onnx/<name>.onnx + its card <name>.json
  preset      BASE_preset/ (a KerasHub preset folder: detection and segmentation)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["ExportedRun", "export_run", "export_run_formats", "read_run_images"]

WARMUP_IMAGES = 1  # encoded training images in the SavedModel's warm-up file


@dataclass
class ExportedRun:
    """A finished run loaded for export: its config, card, model, classes and task."""

    root: Path
    config: Any
    card: dict
    model: Any
    class_names: list[str]
    task: Any

    @classmethod
    def load(cls, run_dir: str | Path) -> ExportedRun:
        # Imported here: the run folder and the task registry import this package's exporters.
        from kerascv_tl.run_folder import RunFolder
        from kerascv_tl.tasks.registry import get_task

        run = RunFolder(run_dir)
        if not run.is_finished():
            raise FileNotFoundError(
                f"{run.root} is not a finished run (no model.keras / metrics.json / model_card.json)"
            )
        config = run.load_config()
        card = json.loads((run / "model_card.json").read_text())
        return cls(run.root, config, card, run.load_model(), run.load_class_names(), get_task(config.task))

    def base(self, output: str | Path | None) -> Path:
        return Path(output) if output else Path(self.config.export.dir) / (self.config.export.name or self.root.name)

    def image_paths(self, split: str = "train") -> list[str]:
        """The run's training (or validation) image files, as its config reads them, bad files left out as
        training left them out; [] when they cannot be read here (moved, or a TFDS source)."""
        from kerascv_tl.data.problems import ProblemLog

        try:
            train, val = self.task.read_sources(self.config.data, self.config.seed, ProblemLog())
        except (OSError, ValueError) as error:
            log.warning("the run's data cannot be read here (%s)", error)
            return []
        return list((train if split == "train" else val).image_paths() or [])


def export_run(run_dir: str | Path, output: str | Path | None = None, version: int | None = None) -> Path:
    """Exports a finished run's model as a SavedModel version folder (the task's serving signatures, a warm-up
    request made of a training image) under `output`; returns the version folder."""
    return export_run_formats(run_dir, ["savedmodel"], output, version)["savedmodel"]


def export_run_formats(
    run_dir: str | Path | ExportedRun,
    formats: Sequence[str] | None = None,
    output: str | Path | None = None,
    version: int | None = None,
    quantize: str | None = None,
    input_dtype: str | None = None,
    output_dtype: str | None = None,
) -> dict[str, Path]:
    """Writes each format (default: the run's `export.formats`; options default to its `export:` section);
    returns {format: the version folder or the artefact file}.

    Long: one branch per format, each a few lines.
    """
    from kerascv_tl.export.portable import litert_file_stem, write_litert, write_onnx

    run = run_dir if isinstance(run_dir, ExportedRun) else ExportedRun.load(run_dir)
    e = run.config.export
    formats = list(formats or e.formats)
    quantize = quantize or e.quantize
    input_dtype, output_dtype = input_dtype or e.input_dtype, output_dtype or e.output_dtype
    unknown = sorted(set(formats) - {"savedmodel", "litert", "onnx", "preset"})
    if unknown:
        raise ValueError(f"unknown export format {', '.join(unknown)}: savedmodel, litert, onnx or preset")
    if "preset" in formats and not run.task.exports_presets:
        from kerascv_tl.config import ConfigError

        raise ConfigError(f"--format preset is not offered for {run.task.name}: its model is not a KerasHub task")
    if quantize == "int8" and "litert" in formats and run.task.litert_int8_refusal:
        from kerascv_tl.config import ConfigError

        raise ConfigError(f"--quantize int8 is not offered for {run.task.name}: {run.task.litert_int8_refusal}")
    base = run.base(output)
    written: dict[str, Path] = {}
    steps, network = (None, None)
    if {"litert", "onnx"} & set(formats):
        steps, network = run.task.export_steps(run.model, run.class_names, run.config, run.card)
    for fmt in formats:
        if fmt == "savedmodel":
            warmup = read_run_images(run.image_paths()[:WARMUP_IMAGES])
            written[fmt] = run.task.export(
                run.model, run.class_names, base, run.config, run.card, version, warmup_images=warmup or None
            )
        elif fmt == "litert":
            calibration = None
            if quantize == "int8":
                calibration = calibration_pixels(run, steps, e.calibration_images, input_dtype)
            path = base.with_name(f"{base.name}_litert") / (
                litert_file_stem(base.name, quantize, input_dtype, output_dtype) + ".tflite"
            )
            written[fmt] = write_litert(
                run.model, steps, network, path, run.card, run.class_names, quantize, calibration, input_dtype,
                output_dtype,
            )  # fmt: skip
        elif fmt == "preset":
            from kerascv_tl.export.preset import write_preset

            written[fmt] = write_preset(
                run.model, base.with_name(f"{base.name}_preset"), run.card, run.class_names, run.task
            )
        else:
            path = base.with_name(f"{base.name}_onnx") / f"{base.name}.onnx"
            written[fmt] = write_onnx(run.model, steps, network, path, run.card, run.class_names, input_dtype)
    return written


def read_run_images(paths: Sequence[str]) -> list[bytes]:
    """The bytes of those files that can be read (a moved data folder leaves the list shorter)."""
    images = []
    for path in paths:
        try:
            images.append(Path(path).read_bytes())
        except OSError as error:
            log.warning("%s: cannot be read (%s)", path, error.strerror or error)
    return images


def calibration_pixels(run: ExportedRun, steps: Any, count: int, input_dtype: str) -> list[np.ndarray]:
    """Up to `count` training images (a seeded sample), decoded and prepared as served: [1, S, S, 3] each.

    Files that no longer decode are left out (and counted in the log); none at all is an error naming why.
    """
    import tensorflow as tf

    from kerascv_tl.data.decode import decode_image
    from kerascv_tl.export.steps import pixels_to_uint8

    paths = run.image_paths()
    if not paths:
        raise FileNotFoundError(
            f"int8 calibration reads the run's training images, and {run.root}'s data ({run.config.data.train or ''}"
            f") gives no image files here; export where the data is, or choose --quantize none|float16|dynamic"
        )
    rng = np.random.default_rng(run.config.seed)
    chosen = [paths[i] for i in sorted(rng.permutation(len(paths))[:count])]
    batches, skipped = [], 0
    for path in chosen:
        try:
            prepared = steps.prepare(decode_image(tf.constant(Path(path).read_bytes())))
        except (OSError, tf.errors.InvalidArgumentError):
            skipped += 1
            continue
        pixels = pixels_to_uint8(prepared["pixels"]).numpy()[None]
        batches.append(pixels.astype(np.float32) if input_dtype == "float32" else pixels)
    if skipped:
        log.warning("int8 calibration: %d of %d sampled training images could not be decoded", skipped, len(chosen))
    if not batches:
        raise ValueError(f"int8 calibration: none of the {len(chosen)} sampled training images of {run.root} decodes")
    return batches
