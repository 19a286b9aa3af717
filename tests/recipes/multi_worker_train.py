"""Runs the `kerascv-tl` CLI and saves the final model's weights, for comparing workers of one run.

    python tests/recipes/multi_worker_train.py WEIGHTS.npz train CONFIG --output RUN [--set ...]

A non-chief worker's run folder is removed when its run ends, so the test compares the workers through
these files: every weight of the trained model (after the best checkpoint is restored), in order.
"""

from __future__ import annotations

import sys

import numpy as np

from kerascv_tl import cli, recipes

_finish = recipes.finish


def _finish_and_save_weights(task, setup, *args, **kwargs):
    metrics = _finish(task, setup, *args, **kwargs)
    np.savez(sys.argv[1], *[w.numpy() for w in setup.model.weights])
    return metrics


recipes.finish = _finish_and_save_weights  # `train` looks it up on the module at call time

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[2:]))
