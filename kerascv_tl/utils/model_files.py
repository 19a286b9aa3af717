"""Loading `.keras` files from strangers without running their code.

`load_keras_model` always passes `safe_mode=True`: Keras then refuses to deserialise a `Lambda` layer's
Python bytecode (the one way a `.keras` file can carry arbitrary code), and this module turns that refusal
into an `UnsafeModelError` naming the file. Nothing in the package unpickles: NumPy files are read with
`allow_pickle=False`, YAML with `yaml.safe_load`.
"""

from __future__ import annotations

import os
import warnings

import keras

__all__ = ["UnsafeModelError", "load_keras_model"]


class UnsafeModelError(ValueError):
    """A model file that would run arbitrary Python code when loaded, refused."""


def load_keras_model(path: str | os.PathLike, compile: bool = False) -> keras.Model:
    """`keras.saving.load_model(path, safe_mode=True)`; a Lambda layer's code is refused with UnsafeModelError."""
    try:
        with warnings.catch_warnings():
            if not compile:
                # KerasHub task models compile themselves when rebuilt, so Keras offers the file's optimizer state
                # to a fresh optimizer and warns that it skipped it; without `compile` that state is not wanted.
                # (Only here: a resumed run's optimizer state must load, and would warn if it did not.)
                warnings.filterwarnings(
                    "ignore", message="Skipping variable loading for optimizer", category=UserWarning
                )
            return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except ValueError as e:
        if "safe_mode" not in str(e):
            raise
        raise UnsafeModelError(
            f"{os.fspath(path)}: refused to load: it holds a Lambda layer whose Python code would run on loading "
            "(safe_mode is always on here). Rebuild the model without Lambda layers, e.g. with a registered "
            "custom layer class, if you trust its author"
        ) from None
