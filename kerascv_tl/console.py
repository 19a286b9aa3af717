"""What a command prints: Python logging levels, Keras' progress display and TensorFlow's native log.

`configure(verbosity)` is called once by the CLI: -1 quiet, 0 normal, 1 verbose, 2 also TensorFlow's log.
"""

from __future__ import annotations

import logging
import os

_verbosity = 0


def silence_native_logs() -> None:
    """TensorFlow's C++ start-up lines, unless the user asked for them; must run before TensorFlow loads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def configure(verbosity: int = 0) -> None:
    global _verbosity
    _verbosity = verbosity
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # e.g. "Assets written to <temporary folder>"


def keras_verbose() -> int:
    """`verbose` for `model.fit`: 0 when quiet, else one line per epoch."""
    return 0 if _verbosity < 0 else 2
