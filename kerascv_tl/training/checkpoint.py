"""The best-epoch checkpoint, written atomically: a kill while it is saved leaves the previous best whole."""

from __future__ import annotations

import os

import keras

__all__ = ["AtomicModelCheckpoint"]


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` that saves into `.partial.<name>` beside the target and renames it over.

    Keras decides when to save and formats the path (`_get_file_path`); this only redirects the write and
    renames (`os.replace`, atomic) once the file is complete.
    """

    def _get_file_path(self, epoch, batch, logs):
        target = super()._get_file_path(epoch, batch, logs)
        folder, name = os.path.split(target)
        self._target, self._partial = target, os.path.join(folder, f".partial.{name}")
        return self._partial

    def _save_model(self, epoch, batch, logs):
        self._target = self._partial = None
        try:
            super()._save_model(epoch, batch, logs)
            if self._partial and os.path.exists(self._partial):
                os.replace(self._partial, self._target)
        finally:
            if self._partial and os.path.exists(self._partial):
                os.remove(self._partial)
