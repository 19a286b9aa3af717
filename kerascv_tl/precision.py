"""Numeric precision and XLA: what the `precision` and `jit_compile` config keys do.

precision (`float32`, `mixed_float16`, `mixed_bfloat16`): the recipes build their model inside
`precision_scope`, which sets Keras' global dtype policy while the layers are created and then puts the
previous policy back. A layer keeps the policy it was built with (it is part of its saved config), so
the model trains, saves and reloads in mixed precision, while whatever the caller's process builds next
(a notebook user's own layers) still gets the policy it had: nothing global changes behind their back.
Scoping the build rather than leaving the policy set is also what keeps the task's final layers in
float32 (see the task builders): their outputs, the losses and the metrics are float32 in every
precision. Loss scaling for mixed_float16 is Keras' own: `model.compile` wraps the optimizer in a
`LossScaleOptimizer` when the model's policy is mixed_float16.

jit_compile (`true`, `false`, `auto`): passed to every `model.compile` in the recipes through
`resolve_jit_compile`. `auto` is XLA off when TensorFlow sees no accelerator, and Keras' own "auto"
otherwise (XLA on unless a tf.distribute strategy is active or a layer cannot be compiled). Measured on
this project's 2-core CPU machines, XLA made training much slower for depthwise-convolution nets
(MobileNetV2 7x, MobileNetV3Small 9x, EfficientNetB0 13x) and did not help ResNet50 (about even in an
earlier measurement, 1.5x slower in `benchmarks/precision_jit.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from kerascv_tl.config import PRECISIONS

JIT_CHOICES = ("auto", "true", "false")


@contextlib.contextmanager
def precision_scope(precision: str) -> Iterator[None]:
    """Layers created inside get the `precision` dtype policy; the previous global policy comes back on exit
    (also when building fails)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def has_accelerator() -> bool:
    """Whether TensorFlow sees a device other than the CPU (GPU, TPU, ...)."""
    import tensorflow as tf

    return any(device.device_type != "CPU" for device in tf.config.list_physical_devices())


def resolve_jit_compile(value: bool | str = "auto", accelerator: bool | None = None) -> bool | str:
    """The `jit_compile` to give `model.compile`: True/False as given (also the strings "true"/"false");
    "auto" -> False without an accelerator, else "auto" (Keras decides per model and strategy).

    `accelerator` defaults to `has_accelerator()`; tests pass it explicitly."""
    if isinstance(value, str):
        value = {"true": True, "false": False}.get(value.strip().lower(), value.strip().lower())
    if isinstance(value, bool):
        return value
    if value != "auto":
        raise ValueError(f"jit_compile must be true, false or auto; got {value!r}")
    if accelerator is None:
        accelerator = has_accelerator()
    return "auto" if accelerator else False


def float32_scope() -> contextlib.AbstractContextManager:
    """Builds the layers created inside in float32 whatever the global policy (task output layers)."""
    return precision_scope("float32")


def follow_backbone_policy(task: keras.Model) -> keras.Model:
    """Gives a KerasHub task model its backbone's dtype policy.

    KerasHub means a task to take its backbone's policy, but its task classes set `backbone` only after
    `Task.__init__` has looked for it, so the task keeps the global policy of its construction (float32
    here, see `float32_scope`). `model.compile` reads the model's own policy to decide on loss scaling:
    without this a mixed_float16 detector or segmenter would train without a LossScaleOptimizer. The policy
    of a functional model does not change how its layers compute. A model reloaded from a .keras file is
    rebuilt by KerasHub under the global policy again: call this before compiling it for more training.
    """
    task.dtype_policy = task.backbone.dtype_policy
    return task
