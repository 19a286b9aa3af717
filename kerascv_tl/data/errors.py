"""Errors raised for problems with a dataset's files.

Every message names the file or folder at fault, so that a user with thousands of images can find the
one that broke a run.
"""

from __future__ import annotations

import os


class DataError(ValueError):
    """A problem with a dataset: a missing folder, an unreadable file, a bad annotation.

    The message always names the file or path. `path` keeps it for callers that want it separately.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class ImageDecodeError(DataError):
    """An image file that cannot be read or decoded (empty, not an image, truncated, corrupt)."""


class DataCheckError(DataError):
    """The data check found bad files and `data.on_bad` is `fail` (the problems are logged one per line)."""
