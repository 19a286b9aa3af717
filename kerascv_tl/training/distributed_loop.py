"""`model.fit` for MultiWorkerMirroredStrategy across more than one worker, as a custom loop.

Keras 3's `model.fit` fails there (keras#20585, Keras 3.15 / TF 2.21): `_maybe_symbolic_build` passes the
whole first (x, y) batch to `strategy.reduce`, which takes one value, not a nest, and with several workers
converts it to a tensor ("Attempt to convert a value (PerReplica ...)"). Past that, the train function's
`reduce_per_replica` fails too: `strategy.reduce("MEAN", metric, axis=0)` on a scalar metric.
This loop keeps the model's compiled optimizer, loss and metrics (it calls `model.train_step` /
`model.test_step` inside `strategy.run`) and the standard callback protocol, and reads the metrics in
cross-replica context, where their SUM-on-read variables are all-reduced across workers, so every
worker logs the same global values and takes the same callback decisions. The steps are not XLA-compiled.
"""

from __future__ import annotations

import functools
import itertools

import keras
import tensorflow as tf


def fit_function(model: keras.Model):
    """`model.fit`, or the custom loop when the model's strategy spans more than one worker."""
    return functools.partial(fit_multi_worker, model) if _multi_worker(model) else model.fit


def _multi_worker(model: keras.Model) -> bool:
    strategy = model.distribute_strategy  # falls back to tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return len(spec.get("worker", [])) + len(spec.get("chief", [])) > 1


def fit_multi_worker(
    model: keras.Model,
    x: tf.data.Dataset,
    validation_data: tf.data.Dataset | None = None,
    epochs: int = 1,
    callbacks=(),
    verbose: int = 2,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    shuffle: bool = False,
) -> keras.callbacks.History:
    """Trains like `model.fit(x, validation_data=..., ...)` on batched datasets; returns the History.

    Every worker builds the same pipeline; batches are split across workers by DATA auto-sharding. `shuffle`
    is accepted for `model.fit`'s signature and, as there, means nothing for a dataset (it comes shuffled).

    Long: the loop follows model.fit's callback order step by step.
    """
    if not all(isinstance(d, tf.data.Dataset) for d in (x, validation_data) if d is not None):
        raise TypeError("fit_multi_worker takes batched tf.data.Dataset inputs")
    strategy = model.distribute_strategy
    with strategy.scope():
        # Variables (optimizer slots, metric accumulators) cannot be created inside `strategy.run`.
        model._symbolic_build(data_batch=x.element_spec)
    train_data = _distribute(strategy, x)
    val_data = None if validation_data is None else _distribute(strategy, validation_data)
    train_step = _step(strategy, model, model.train_step, train_data.element_spec)
    test_step = None if val_data is None else _step(strategy, model, model.test_step, val_data.element_spec)
    cardinality = int(x.cardinality())
    steps = steps_per_epoch or (cardinality if cardinality >= 0 else None)

    callbacks = keras.callbacks.CallbackList(
        callbacks, model=model, add_history=True, add_progbar=verbose != 0, verbose=verbose, epochs=epochs, steps=steps
    )
    model.stop_training = False
    callbacks.on_train_begin()  # BackupAndRestore sets model._initial_epoch here
    epoch_logs, iterator = None, None
    for epoch in range(model._initial_epoch or initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        logs = {}
        # As in Keras: with steps_per_epoch one iterator runs on across epochs (e.g. a stream of several).
        if iterator is None or steps_per_epoch is None:
            iterator = iter(train_data)
        for step in itertools.count() if steps_per_epoch is None else range(steps_per_epoch):
            batch = next(iterator, None)
            if batch is None:  # out of data: the epoch ends here, the next one starts a new pass
                iterator = None
                break
            callbacks.on_train_batch_begin(step)
            logs = train_step(batch)
            callbacks.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if val_data is not None:
            val_logs = _evaluate(model, test_step, val_data, callbacks)
            epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    if epochs > 0 and model.optimizer is not None:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(epoch_logs)
    return model.history


def _evaluate(model, test_step, data, callbacks) -> dict:
    model.reset_metrics()
    callbacks.on_test_begin()
    logs = {}
    for step, batch in enumerate(data):
        callbacks.on_test_batch_begin(step)
        logs = test_step(batch)
        callbacks.on_test_batch_end(step, logs)
    callbacks.on_test_end(logs)
    return logs


def _distribute(strategy, dataset: tf.data.Dataset):
    options = tf.data.Options()
    # DATA: every worker reads the same (seeded) pipeline and keeps its share of each global batch.
    # FILE/AUTO would shard by input file, which in-memory and file-list pipelines do not have.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # With autotune on, deleting a multi-worker iterator waits for tf.data's autotune thread to wake from
    # its sleep (up to 60 s, measured 5-60 s per fit on TF 2.21), while the other workers wait at the
    # next collective. AUTOTUNE parallelism then falls back to TensorFlow's defaults.
    options.autotune.enabled = False
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def _step(strategy, model, step_function, element_spec):
    # The signature is the distributed dataset's (batch dimension None): one trace, not one per call.
    @tf.function(input_signature=[element_spec])
    def run(batch):
        strategy.run(step_function, args=(batch,))
        # Cross-replica read: each metric's SUM-on-read variables are all-reduced over every worker.
        return model.get_metrics_result()

    def step(batch) -> dict:
        return {name: value.numpy() for name, value in run(batch).items()}

    return step
