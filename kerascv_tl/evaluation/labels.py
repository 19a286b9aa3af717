"""Checks on the class names every evaluator is given."""

from __future__ import annotations

from collections.abc import Sequence


def check_class_names(class_names: Sequence[str]) -> list[str]:
    """The names as a list of str; ValueError for a bare string, an empty list or duplicates."""
    if isinstance(class_names, str):
        raise ValueError("class_names must be a sequence of names, not a single string")
    names = [str(name) for name in class_names]
    if not names:
        raise ValueError("class_names is empty: need at least one class")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"class_names must be distinct, got duplicates {duplicates}")
    return names
