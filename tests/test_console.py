"""kerascv_tl.console: Keras' progress display, the native-log filter, and what the CLI alone changes."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import warnings

import pytest

from kerascv_tl import console
from kerascv_tl.run_folder import RunFolder

NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796430595.914900   26788 port.cc:153] oneDNN custom operations are on. You may see...\n"
    "I0000 00:00:1796430595.915252   26788 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
    "I0000 00:00:1796430610.036585   27109 cpu_feature_guard.cc:227] This TensorFlow binary is optimized...\n"
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.\n"
)
WARNING_LINE = "W0000 00:00:1796430610.1   27109 gpu_device.cc:2344] Cannot dlopen some GPU libraries.\n"
ERROR_LINE = "E0000 00:00:1796430756.030626   31490 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
PYTHON_WARNING = "/x/y.py:74: UserWarning: something\n  source_line()\n"


@pytest.fixture
def restored_console(monkeypatch):
    """configure() sets process-wide logging levels and warning filters: put them back after the test."""
    names = ("", "kerascv_tl", "tensorflow")
    levels = {name: logging.getLogger(name).level for name in names}
    monkeypatch.setattr(console, "_verbosity", console._verbosity)
    monkeypatch.setattr(console, "_we_set_log_level", console._we_set_log_level)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    with warnings.catch_warnings():
        yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("verbosity", "isatty", "expected"), [(0, True, 1), (0, False, 2), (1, False, 2), (-1, True, 0), (-1, False, 0)]
)
def test_keras_verbose_is_a_progress_bar_on_a_terminal_one_line_per_epoch_elsewhere_and_nothing_when_quiet(
    monkeypatch, verbosity, isatty, expected
):
    monkeypatch.setattr(console, "_verbosity", verbosity)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: isatty, raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert console.keras_verbose() == expected


def test_native_noise_is_dropped_below_the_level_and_everything_else_kept():
    text = NOISE + WARNING_LINE + PYTHON_WARNING + ERROR_LINE + "a line of the program\n"
    assert console.without_native_noise(text, 3) == PYTHON_WARNING
    assert console.without_native_noise(text, 2) == PYTHON_WARNING + ERROR_LINE + "a line of the program\n"
    assert console.without_native_noise(text, 0) == text.replace(NOISE.splitlines(keepends=True)[0], "")


def test_native_stderr_is_filtered_at_the_file_descriptor(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    with console.native_stderr_filtered():
        os.write(2, ("kept\n" + NOISE + ERROR_LINE + PYTHON_WARNING).encode())
    assert capfd.readouterr().err == "kept\n" + PYTHON_WARNING


def test_a_failing_import_passes_every_native_line_on(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    with pytest.raises(ImportError), console.native_stderr_filtered():
        os.write(2, ERROR_LINE.encode())
        raise ImportError("libcudnn.so.9: cannot open shared object file")
    assert capfd.readouterr().err == ERROR_LINE


def test_the_cli_sets_the_native_level_and_minus_vv_takes_it_back(monkeypatch, restored_console):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as before TensorFlow is first imported
    console.silence_native_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == console.NATIVE_LOG_LEVEL
    assert any(type(f).__name__ == "_FilteredImport" for f in sys.meta_path)
    console.configure(2)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert not any(type(f).__name__ == "_FilteredImport" for f in sys.meta_path)


def test_a_level_the_user_chose_is_kept(monkeypatch, restored_console):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    console.silence_native_logs()
    console.configure(2)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


@pytest.mark.parametrize(("verbosity", "ours"), [(-1, logging.WARNING), (0, logging.INFO), (1, logging.DEBUG)])
def test_configure_sets_our_level_and_keeps_other_libraries_at_warning(restored_console, verbosity, ours):
    console.configure(verbosity)
    assert logging.getLogger("kerascv_tl").level == ours
    assert logging.getLogger().level == logging.WARNING  # PIL and matplotlib log every chunk and font at DEBUG
    assert logging.getLogger("tensorflow").level == logging.WARNING


def test_importing_the_library_changes_nothing_in_the_process():
    """A notebook's `import kerascv_tl` (and TensorFlow through it) leaves the environment and imports alone."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    script = (
        "import os, sys, kerascv_tl, kerascv_tl.console, kerascv_tl.config\n"
        "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), [type(f).__name__ for f in sys.meta_path])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("None ") and "_FilteredImport" not in out


def _history(run: RunFolder, phase: str, values: list[float]) -> None:
    with open(run.history(phase), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "val_loss"])
        writer.writerows(enumerate(values))


def test_best_epoch_line_names_the_phase_epoch_value_and_a_better_earlier_phase(tmp_path):
    from kerascv_tl.training.fit import best_epoch_line

    run = RunFolder(tmp_path)
    assert best_epoch_line(run, "head", "val_loss") is None
    _history(run, "head", [0.9, 0.5, 0.7])
    assert best_epoch_line(run, "head", "val_loss") == "head: best epoch 2 of 3, val_loss 0.5000"
    _history(run, "fine_tune", [0.8, 0.6])
    assert best_epoch_line(run, "fine_tune", "val_loss") == (
        "fine_tune: best epoch 2 of 2, val_loss 0.6000 (an earlier phase reached 0.5000: the run keeps that checkpoint)"
    )
