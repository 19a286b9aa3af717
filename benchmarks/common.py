"""What every benchmark shares: the machine it ran on, medians, shared assets and result files."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))  # `python benchmarks/x.py` from a checkout without installing


def assets() -> Path:
    return Path(os.environ.get("KERASCV_TL_ASSETS", str(ROOT.parent / "shared" / "assets")))


def mobilenet_v2_weights() -> Path:
    return assets() / "weights" / "mobilenet_v2_imagenet" / "mobilenet_v2_torchvision_ported_keras_notop.weights.h5"


def git_commit() -> str:
    """The checkout's commit, with "+changes" when tracked files differ from it (a figure from such a tree is
    not the committed recipe's)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    # The results being written are not the code being measured.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results")
    return commit + ("+changes" if changed else "")


def machine() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    device = f"{len(gpus)} GPU(s)" if gpus else "CPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__} ({device})"


def median(values) -> float:
    return float(statistics.median(values))


def alternate(calls: dict, repeats: int, warmups: int) -> dict[str, list[float]]:
    """{name: seconds per call}: each call run `warmups` times untimed (tracing, first allocations), then the
    calls in turn for `repeats` rounds, so that load from other processes falls on all of them alike."""
    for call in calls.values():
        for _ in range(warmups):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return times


class StepTimer(keras.callbacks.Callback):
    """Seconds between consecutive training-batch ends (input waits included); `steady` drops the first few."""

    def __init__(self, skip: int = 2):
        super().__init__()
        self.skip = skip
        self.times: list[float] = []
        self._last: float | None = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._last is None:
            self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now

    @property
    def steady(self) -> list[float]:
        return self.times[self.skip :]


def write_result(name: str, result: dict) -> Path:
    """benchmarks/results/NAME.json, written atomically, with the machine it ran on."""
    from kerascv_tl.utils.io import atomic_write_json

    result = {"benchmark": name, "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, result)
    print(f"wrote {path}")
    return path
