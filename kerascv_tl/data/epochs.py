"""Training data as a pure function of (seed, epoch): what makes resuming a killed run exact.

Every training pipeline takes an `epoch` and draws its shuffle order and augmentation from
`epoch_seed(seed, epoch)` without carrying random state from one epoch to the next. A run resumed at
epoch e, step k therefore sees the batches an uninterrupted run would have seen from there on
(`EpochData.stream`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for one epoch's shuffle and augmentation, independent across (seed, epoch) pairs."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0] >> 1)


@dataclass
class EpochData:
    """`make(epoch)` -> that epoch's batched dataset, exactly `steps` batches long."""

    make: Callable[[int], tf.data.Dataset]
    steps: int

    def stream(self, first_epoch: int, epochs: int, skip_steps: int = 0) -> tf.data.Dataset:
        """Epochs first_epoch..epochs-1 back to back, without the first `skip_steps` batches of the first."""
        ds = self._whole(first_epoch).skip(skip_steps)
        for epoch in range(first_epoch + 1, epochs):
            ds = ds.concatenate(self._whole(epoch))
        return ds

    def _whole(self, epoch: int) -> tf.data.Dataset:
        # Exactly `steps` batches even when files that fail to decode were left out (`data.tolerant`): a short
        # epoch is topped up from its own start, so epochs stay aligned with steps_per_epoch.
        return self.make(epoch).repeat().take(self.steps)
