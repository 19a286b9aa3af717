"""What a command prints: Python logging levels, Keras' progress display and TensorFlow's native log.

The CLI calls `silence_native_logs()` when it is imported and `configure(verbosity)` once it has parsed its
arguments: -1 quiet (results, warnings, errors), 0 normal (a few lines per phase), 1 verbose (kerascv_tl's
DEBUG lines), 2 also TensorFlow's own log (its C++ lines and its Python logger at INFO).

Only the CLI changes the process here (environment, import hook, logging levels): `import kerascv_tl` in a
notebook leaves all of that as the user set it. What the library itself reads is `keras_verbose()`.

TensorFlow's native start-up lines ignore TF_CPP_MIN_LOG_LEVEL: oneDNN's notice ("oneDNN custom operations are
on") and the CUDA stub's ("Could not find cuda drivers") are logged while TensorFlow's libraries load, before
absl::InitializeLog() and before TensorFlow reads the variable, once per library that holds a copy of that
code (two in TF 2.21). No variable turns them off short of TF_ENABLE_ONEDNN_OPTS=0, which would also turn off
the oneDNN kernels, and so change speed and numbers. So the CLI runs TensorFlow's first import with file
descriptor 2 captured and passes on only the lines that TF_CPP_MIN_LOG_LEVEL lets through (plus anything that
is not a TensorFlow log line, such as a Python warning); an import that fails passes everything on.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import re
import sys
import tempfile
import warnings

__all__ = [
    "configure",
    "device_line",
    "keras_verbose",
    "native_stderr_filtered",
    "silence_native_logs",
    "verbosity",
    "without_native_noise",
]

# 3 keeps only FATAL lines. It also hides native ERROR lines, which at start-up are noise on a machine without a
# GPU ("failed call to cuInit ... (303)") or informational ("oneDNN supports DT_UINT8 only on platforms with
# AVX-512"), but on a GPU machine can be the reason a later Python error gives (a cuDNN version mismatch, a
# driver too old): that Python error is still raised and printed, and `-vv` shows the native lines.
# WARNING lines (2 would hide them too) include "Cannot dlopen some GPU libraries": the recipes log which
# devices they train on instead (`device_line`).
NATIVE_LOG_LEVEL = "3"
_LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# glog/absl prefix: severity, MMDD, time, thread id, file:line]
_NATIVE_RECORD = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_PYTHON_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")

_verbosity = 0
_we_set_log_level = False  # silence_native_logs set TF_CPP_MIN_LOG_LEVEL, so `-vv` may take it back


def silence_native_logs() -> None:
    """Quiets TensorFlow's native log for this process unless the user set TF_CPP_MIN_LOG_LEVEL, and runs its
    first import with stderr filtered (see the module docstring); must run before TensorFlow loads."""
    global _we_set_log_level
    if _LOG_LEVEL_VARIABLE not in os.environ:
        os.environ[_LOG_LEVEL_VARIABLE] = NATIVE_LOG_LEVEL
        _we_set_log_level = True
    if "tensorflow" not in sys.modules and not any(isinstance(f, _FilteredImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _FilteredImport("tensorflow"))


def configure(verbosity: int = 0) -> None:
    """Logging levels for -q (-1), normal (0), -v (1) and -vv (2); at 2, TensorFlow's native log as it comes."""
    global _verbosity, _we_set_log_level
    _verbosity = verbosity
    if verbosity >= 2:
        if _we_set_log_level and "tensorflow" not in sys.modules:
            os.environ.pop(_LOG_LEVEL_VARIABLE, None)
            _we_set_log_level = False
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _FilteredImport)]
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(message)s")
    # Other libraries stay at WARNING (PIL and matplotlib log every chunk and font at DEBUG) until -vv.
    logging.getLogger().setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)
    ours = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.getLogger("kerascv_tl").setLevel(ours)
    # e.g. "Assets written to <temporary folder>" at INFO
    logging.getLogger("tensorflow").setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)
    _ignore_false_alarms()


def _ignore_false_alarms() -> None:
    """The library warnings that have no cause in this package: each filter names its message and its module."""
    # Keras 3.15's Variable.__array__ takes no `copy` argument, which NumPy 2 deprecates; every weights save meets
    # it (np.array(variable) in keras.src). Seen only with DeprecationWarnings shown (-W default, PYTHONWARNINGS).
    warnings.filterwarnings(
        "ignore",
        message="__array__ implementation doesn't accept a copy keyword",
        category=DeprecationWarning,
        module=r"keras\.src\.",
    )


def verbosity() -> int:
    return _verbosity


def keras_verbose() -> int:
    """`verbose` for `model.fit`: 0 when quiet; Keras' progress bar (1) on a terminal or in a notebook, which
    redraw it in place; else one line per epoch (2), since a log file or CI page would keep every redraw."""
    if _verbosity < 0:
        return 0
    return 1 if _interactive() else 2


def _interactive() -> bool:
    try:
        return sys.stdout.isatty() or "ipykernel" in sys.modules
    except (AttributeError, ValueError):  # no stdout, or a closed one
        return False


def device_line(strategy) -> str:
    """One line on what the run trains on; a machine whose GPU TensorFlow cannot use says so here, since the
    native warning that says why ("Cannot dlopen some GPU libraries") is hidden below -vv."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    replicas = strategy.num_replicas_in_sync
    where = f"{len(gpus)} GPU(s)" if gpus else "the CPU (TensorFlow sees no GPU; kerascv-tl -vv shows why)"
    spread = f", {type(strategy).__name__} over {replicas} replicas" if replicas > 1 else ""
    return f"training on {where}{spread}"


@contextlib.contextmanager
def native_stderr_filtered():
    """Captures file descriptor 2 (where C++ writes) and passes on what TF_CPP_MIN_LOG_LEVEL allows; everything
    when the block raises. Without a usable descriptor 2 (a closed stderr) it captures nothing."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    failed = True
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            kept = text if failed else without_native_noise(text, _min_native_level())
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def without_native_noise(text: str, min_level: int) -> str:
    """`text` without native log records below `min_level` (0 INFO .. 3 FATAL, as TF_CPP_MIN_LOG_LEVEL), their
    continuation lines, and absl's "All log messages before absl::InitializeLog()" notice."""
    kept, keep = [], True
    for line in text.splitlines(keepends=True):
        record = _NATIVE_RECORD.match(line)
        if record:
            keep = "IWEF".index(record.group(1)) >= min_level
        elif line.startswith(_ABSL_PREAMBLE):
            continue
        elif _PYTHON_WARNING.match(line):
            keep = True
        if keep:
            kept.append(line)
    return "".join(kept)


def _min_native_level() -> int:
    try:
        return int(os.environ.get(_LOG_LEVEL_VARIABLE, "0"))
    except ValueError:
        return 0


class _FilteredImport(importlib.abc.MetaPathFinder):
    """Finds `name` with the other finders and runs its import inside `native_stderr_filtered`, once."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _FilteredLoader(spec.loader, self)
        return spec


class _FilteredLoader(importlib.abc.Loader):
    def __init__(self, loader, finder: _FilteredImport):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module keeps its own loader (importlib.resources and reload use it); the hook is spent.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self.finder)
        with native_stderr_filtered():
            self.loader.exec_module(module)
