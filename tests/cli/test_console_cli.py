"""What `kerascv-tl train` prints, in a process of its own as a user runs it: no TensorFlow C++ lines and no
Python warnings, one line per epoch when stdout is a file, Keras' progress bar on a terminal, results only
with --quiet.

The child gets the environment a user has: without the TF_CPP_MIN_LOG_LEVEL that conftest.py sets for the
test process, and with PYTHONWARNINGS=default so that no filter of the test setup hides a warning.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import tiny_overrides

NATIVE_RECORD = re.compile(r"^[IWEF]\d{4} ")  # glog / absl: severity, MMDD, time, thread, file:line]
NATIVE_WORDS = ("onednn", "cuinit", "cuda", "absl::initializelog")
EPOCH_LINE = re.compile(r"^\d+/\d+ - \d+m?s - .* - val_loss: [\d.]+$")  # Keras' verbose=2 line
OUR_LOG_LINES = ("training on ", "data check: ", "head: ", "fine_tune: ", "run finished in ")
TIMEOUT_S = 300


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONWARNINGS"] = "default"
    return env


def _train(shapes: Path, run_dir: Path, *extra: str, recipe: str = "fine_tune") -> list[str]:
    args = [sys.executable, "-m", "kerascv_tl.cli", "train", "shapes_fine_tune", "--output", str(run_dir), *extra]
    for override in tiny_overrides(shapes, recipe=recipe):
        args += ["--set", override]
    return args


def _on_terminal(args: list[str], cwd: Path, stderr_path: Path) -> tuple[int, str]:
    """Runs `args` with stdout on a pseudo-terminal (as in a terminal window); (exit status, what it showed)."""
    controller, terminal = pty.openpty()
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=terminal, stderr=stderr, cwd=cwd, env=_env(), close_fds=True
        )
    os.close(terminal)
    shown, deadline = bytearray(), time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if select.select([controller], [], [], 1.0)[0]:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the child closed its terminal
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    # The terminal turns each "\n" into "\r\n"; a "\r" or "\b" left after undoing that is a redraw.
    return process.wait(timeout=30), shown.decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.slow(seconds=30)
def test_piped_train_prints_epoch_lines_phase_lines_and_where_things_are(shapes_classification, tmp_path):
    run_dir = tmp_path / "run"
    with open(tmp_path / "stdout.txt", "wb") as out, open(tmp_path / "stderr.txt", "wb") as err:
        result = subprocess.run(
            _train(shapes_classification, run_dir),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=tmp_path,
            env=_env(),
            timeout=TIMEOUT_S,
        )
    stdout, stderr = (tmp_path / "stdout.txt").read_text(), (tmp_path / "stderr.txt").read_text()
    assert result.returncode == 0, stderr
    for line in stderr.splitlines():
        assert not NATIVE_RECORD.match(line), f"TensorFlow's native log: {line}"
        assert not any(word in line.lower() for word in NATIVE_WORDS), f"TensorFlow's native log: {line}"
        assert "Warning:" not in line, f"a Python warning: {line}"
        assert line.startswith(OUR_LOG_LINES), f"not one of the run's own lines: {line}"
    assert "head: 1 epoch(s), learning rate 0.003, backbone frozen" in stderr
    assert re.search(r"^head: best epoch 1 of 1, val_accuracy \d\.\d{4}", stderr, re.M)
    assert re.search(r"^fine_tune: 1 epoch\(s\), learning rate 0.0005 .*backbone block\(s\) unfrozen$", stderr, re.M)
    assert re.search(r"^fine_tune: best epoch 1 of 1, val_accuracy", stderr, re.M)
    assert re.search(r"^data check: \d+ file\(s\) checked, no problems", stderr, re.M)

    assert "\r" not in stdout and "\b" not in stdout, "a progress bar in a file"
    lines = stdout.splitlines()
    assert [bool(EPOCH_LINE.match(line)) for line in lines] == [True, True, False, False, False], stdout
    config = run_dir / "config.yaml"
    assert lines[2:] == [
        f"run folder: {run_dir}",
        lines[3],
        f"recipe: {config} (edit and rerun with: kerascv-tl train {config})",
    ]
    assert lines[3].startswith("validation accuracy: ")


@pytest.mark.slow(seconds=20)
def test_quiet_train_prints_only_its_results_even_on_a_terminal(shapes_classification, tmp_path):
    run_dir = tmp_path / "run"
    status, shown = _on_terminal(
        _train(shapes_classification, run_dir, "--quiet", recipe="feature_extraction"),
        tmp_path,
        tmp_path / "stderr.txt",
    )
    stderr = (tmp_path / "stderr.txt").read_text()
    assert status == 0, stderr
    assert stderr == ""
    lines = shown.splitlines()
    assert lines[0] == f"run folder: {run_dir}" and lines[1].startswith("validation accuracy: "), shown
    assert len(lines) == 2 and "\r" not in shown and "\b" not in shown, shown


def test_keras_shows_its_progress_bar_on_a_terminal(tmp_path):
    """The library's default `verbose` on a real terminal: Keras' progress bar, redrawn in place."""
    script = (
        "import numpy as np, keras\n"
        "from kerascv_tl import console\n"
        "print('verbose', console.keras_verbose())\n"
        "model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
        "model.compile('sgd', 'mse')\n"
        "model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, verbose=console.keras_verbose())\n"
    )
    status, shown = _on_terminal([sys.executable, "-c", script], tmp_path, tmp_path / "stderr.txt")
    assert status == 0, (tmp_path / "stderr.txt").read_text()
    assert shown.startswith("verbose 1\n")
    assert "━" in shown and ("\r" in shown or "\b" in shown), shown
