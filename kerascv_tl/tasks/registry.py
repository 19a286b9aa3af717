"""The task registry: the one place that knows the list of tasks.

Each entry names the module and class implementing `kerascv_tl.tasks.base.Task`; a task module is imported
only when its task is asked for, so reading this list (e.g. for the config's choices) imports no TensorFlow.
Adding a task is one line here plus its own modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kerascv_tl.tasks.base import Task

_TASKS: dict[str, str] = {
    "classification": "kerascv_tl.tasks.classification:ClassificationTask",
    "detection": "kerascv_tl.tasks.detection:DetectionTask",
    "segmentation": "kerascv_tl.tasks.segmentation:SegmentationTask",
    "multi_label": "kerascv_tl.tasks.multi_label:MultiLabelTask",
}

_INSTANCES: dict[str, Task] = {}


def task_names() -> tuple[str, ...]:
    """The registered task names, in registry order."""
    return tuple(_TASKS)


def get_task(name: str) -> Task:
    """The task called `name` (one shared instance per process); ValueError naming the known tasks otherwise."""
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(_TASKS)}")
    if name not in _INSTANCES:
        module_name, _, class_name = _TASKS[name].partition(":")
        _INSTANCES[name] = getattr(importlib.import_module(module_name), class_name)()
    return _INSTANCES[name]
