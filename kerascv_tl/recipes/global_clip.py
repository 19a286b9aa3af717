"""Adam whose `global_clipnorm` clips the gradient of the GLOBAL batch, also under tf.distribute."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kerascv_tl")
class GlobalClipAdam(keras.optimizers.Adam):
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
