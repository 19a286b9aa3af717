"""Fine-tuning in two phases.

Phase "head": backbone frozen, the new head trains at `train.learning_rate` (on cached embeddings when
`train.cache_features` is true: a linear probe in seconds, then fine-tuning from it).
Phase "fine_tune": the top `train.unfreeze` blocks (or all, or from a named layer) train too, at
`train.fine_tune_learning_rate` with linear warmup then cosine decay; BatchNorm stays in inference mode.
The best checkpoint by `train.monitor` across both phases is what the run keeps.
"""

from __future__ import annotations

import logging

import keras

from kerascv_tl.recipes.classification import ClassificationSetup
from kerascv_tl.recipes.feature_extraction import train_head
from kerascv_tl.recipes.runner import compile_classifier, fit_phase, restore_best
from kerascv_tl.tasks import unfreeze_backbone
from kerascv_tl.tasks.freeze import parse_unfreeze

log = logging.getLogger(__name__)


def warmup_cosine(peak: float, epochs: int, warmup_epochs: int, steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    total = max(epochs * steps, 1)
    warmup = min(warmup_epochs * steps, total - 1)
    if warmup <= 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 100.0, decay_steps=total - warmup, warmup_target=peak, warmup_steps=warmup
    )


def run(s: ClassificationSetup, verbose: int = 2) -> None:
    train_config = s.config.train
    train_data, val_data = s.train_dataset(), s.val_dataset()
    train_head(s, train_config.head_epochs, verbose, image_data=(train_data, val_data))
    with s.strategy.scope():
        blocks = unfreeze_backbone(s.model, **parse_unfreeze(train_config.unfreeze))
        log.info("unfroze %d backbone block(s): %s", len(blocks), ", ".join(blocks))
        schedule = warmup_cosine(train_config.fine_tune_learning_rate, train_config.epochs, train_config.warmup_epochs,
                                 train_data.steps)
        compile_classifier(s.model, train_config, schedule, s.train.num_classes, s.config.jit_compile)
    fit_phase(s.run, "fine_tune", s.model, train_data, val_data, train_config.epochs, train_config, verbose)
    restore_best(s.run, s.model)
