"""The two-phase schedule the detection and segmentation recipes share.

Phase "head": backbone frozen, the new task layers train at `train.learning_rate` (`train.epochs` of
them for feature_extraction, `train.head_epochs` for fine_tune). Phase "fine_tune": the top
`train.unfreeze` backbone blocks train too, at `train.fine_tune_learning_rate` with warmup + cosine
decay. The best checkpoint by `train.monitor` is restored at the end.
"""

from __future__ import annotations

import logging
from typing import Callable

import keras

from kerascv_tl.recipes.fine_tune import warmup_cosine
from kerascv_tl.data.epochs import EpochData
from kerascv_tl.recipes.runner import RunFolder, fit_phase, restore_best
from kerascv_tl.tasks import freeze_backbone, unfreeze_backbone
from kerascv_tl.tasks.freeze import parse_unfreeze

log = logging.getLogger(__name__)


def fit_head_then_backbone(config, run: RunFolder, model: keras.Model, strategy, train_data: EpochData, val_data,
                           compile_model: Callable[[keras.Model, object], None], verbose: int = 2) -> None:
    """`compile_model(model, learning_rate_or_schedule)` compiles for the task (under the strategy)."""
    train_config = config.train
    head_epochs = train_config.head_epochs if config.recipe == "fine_tune" else train_config.epochs
    with strategy.scope():
        freeze_backbone(model)
        compile_model(model, train_config.learning_rate)
    fit_phase(run, "head", model, train_data, val_data, head_epochs, train_config, verbose)
    if config.recipe == "fine_tune":
        with strategy.scope():
            blocks = unfreeze_backbone(model, **parse_unfreeze(train_config.unfreeze))
            log.info("unfroze %d backbone block(s): %s", len(blocks), ", ".join(blocks))
            schedule = warmup_cosine(train_config.fine_tune_learning_rate, train_config.epochs,
                                     train_config.warmup_epochs, train_data.steps)
            compile_model(model, schedule)
        fit_phase(run, "fine_tune", model, train_data, val_data, train_config.epochs, train_config, verbose)
    restore_best(run, model)
