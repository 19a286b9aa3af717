"""Optimizers and learning-rate schedules from `train:` for every task.

`make_optimizer` honours `train.optimizer` and `train.weight_decay` (decoupled, Keras' `weight_decay`) for
every task; a task that needs gradient clipping (detection's randomly initialised heads) passes
`global_clipnorm`, which then bounds the norm of the GLOBAL batch's gradient, also under tf.distribute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

if TYPE_CHECKING:
    from kerascv_tl.config import TrainConfig

LearningRate = float | keras.optimizers.schedules.LearningRateSchedule

SGD_MOMENTUM = 0.9
ADAMW_DEFAULT_WEIGHT_DECAY = 1e-4  # AdamW with train.weight_decay 0 would be Adam under another name


class GlobalClipMixin:
    """Keras clips each replica's share of the gradient before the replicas' gradients are summed, so with
    N replicas `global_clipnorm` bounds the wrong norm and a mirrored run drifts from a single-device run.
    Here the clip factor comes from the summed gradient (one extra all-reduce, only with N > 1 and a clip)."""

    def _clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        if not self.global_clipnorm or context is None or context.num_replicas_in_sync == 1:
            return super()._clip_gradients(grads)
        present = [g for g in grads if g is not None]
        norm = tf.linalg.global_norm(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
        factor = self.global_clipnorm / tf.maximum(norm, self.global_clipnorm)
        return [None if g is None else g * tf.cast(factor, g.dtype) for g in grads]


@keras.saving.register_keras_serializable(package="kerascv_tl")
class GlobalClipAdam(GlobalClipMixin, keras.optimizers.Adam):
    """Adam whose `global_clipnorm` clips the gradient of the global batch."""


@keras.saving.register_keras_serializable(package="kerascv_tl")
class GlobalClipAdamW(GlobalClipMixin, keras.optimizers.AdamW):
    """AdamW whose `global_clipnorm` clips the gradient of the global batch."""


@keras.saving.register_keras_serializable(package="kerascv_tl")
class GlobalClipSGD(GlobalClipMixin, keras.optimizers.SGD):
    """SGD whose `global_clipnorm` clips the gradient of the global batch."""


def make_optimizer(
    train_config: TrainConfig, learning_rate: LearningRate, global_clipnorm: float | None = None
) -> keras.optimizers.Optimizer:
    """The optimizer `train.optimizer` names, with `train.weight_decay` and, when given, global-batch clipping."""
    name = train_config.optimizer
    weight_decay = train_config.weight_decay or None
    clip = {"global_clipnorm": global_clipnorm} if global_clipnorm else {}
    if name == "adam":
        return (GlobalClipAdam if clip else keras.optimizers.Adam)(learning_rate, weight_decay=weight_decay, **clip)
    if name == "adamw":
        return (GlobalClipAdamW if clip else keras.optimizers.AdamW)(
            learning_rate, weight_decay=weight_decay or ADAMW_DEFAULT_WEIGHT_DECAY, **clip
        )
    if name == "sgd":
        return (GlobalClipSGD if clip else keras.optimizers.SGD)(
            learning_rate, momentum=SGD_MOMENTUM, nesterov=True, weight_decay=weight_decay, **clip
        )
    raise ValueError(f"unknown optimizer {name!r}")


def warmup_cosine(
    peak: float, epochs: int, warmup_epochs: int, steps: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warmup from peak / 100 to `peak` over `warmup_epochs`, then cosine decay to 0 by the last step."""
    total = max(epochs * steps, 1)
    warmup = min(warmup_epochs * steps, total - 1)
    if warmup <= 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 100.0, decay_steps=total - warmup, warmup_target=peak, warmup_steps=warmup
    )
