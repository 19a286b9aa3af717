"""The task registry: names, lookup, and that reading it imports no TensorFlow."""

import subprocess
import sys

import pytest

from kerascv_tl.tasks.base import Task
from kerascv_tl.tasks.registry import get_task, task_names


def test_every_registered_task_implements_the_interface():
    names = task_names()
    assert {"classification", "detection", "segmentation"} <= set(names)
    for name in names:
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name
        assert task.default_monitor.startswith("val_")
        assert task.card_metrics
        # Every hook the schedule, the recipe and the CLI call is the task's own, not the base class's stub.
        for hook in (
            "read_sources",
            "read_eval_source",
            "training_data",
            "validation_data",
            "build_model",
            "compile",
            "headline",
            "serving_resize",
            "export_steps",
            "serving_steps",
            "export_agreement",
            "prediction_rows",
            "prediction_line",
        ):
            assert getattr(type(task), hook) is not getattr(Task, hook), f"{name} does not implement {hook}"
        # evaluate: the base class runs the task's evaluation loop, unless the task overrides it.
        assert type(task).evaluate is not Task.evaluate or callable(getattr(task, "evaluation_loop", None))


def test_one_instance_per_task_and_unknown_names_are_refused():
    assert get_task("detection") is get_task("detection")
    with pytest.raises(ValueError, match="unknown task 'tracking'; known tasks: classification"):
        get_task("tracking")


def test_the_config_module_imports_no_tensorflow_and_checks_task_names_against_the_registry():
    code = "import sys, kerascv_tl.config; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # `kerascv-tl --help` stays fast
    from kerascv_tl.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="task must be one of classification, detection, segmentation"):
        load_config(None, ["task=tracking"])


def test_the_package_exports_the_model_builders_not_their_modules():
    import kerascv_tl.tasks
    import kerascv_tl.tasks.detector  # noqa: F401  (a submodule import must not shadow the function)

    assert callable(kerascv_tl.tasks.detector) and kerascv_tl.tasks.detector.__name__ == "detector"
    assert kerascv_tl.tasks.classifier.__name__ == "classifier"
