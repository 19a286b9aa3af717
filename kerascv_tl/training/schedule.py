"""The one training schedule every task follows.

Phase "head": the backbone is frozen and the task's new layers train at `train.learning_rate` (for
`train.epochs` epochs with the feature_extraction recipe, `train.head_epochs` with fine_tune), on images or on
whatever smaller model and data the task's `head_phase` hook returns (classification's cached embeddings). A run
that starts from a task preset (`model.preset`) trains only the rebuilt class layer here, or with
`model.train_heads` everything but the backbone (`kerascv_tl.tasks.presets.freeze_for_head_phase`).
The best head checkpoint is then loaded. Phase "fine_tune" (fine_tune recipe only): the top `train.unfreeze`
backbone blocks train too (BatchNorm stays in inference mode), at `train.fine_tune_learning_rate` with linear
warmup then cosine decay. The best checkpoint by `train.monitor` across both phases is what the run keeps.
Each phase resumes exactly where a killed run stopped (`training.fit.fit_phase`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kerascv_tl.tasks.freeze import parse_unfreeze, unfreeze_all, unfreeze_backbone
from kerascv_tl.tasks.presets import freeze_for_head_phase
from kerascv_tl.training.fit import fit_phase, restore_best, save_weights
from kerascv_tl.training.optimizers import warmup_cosine

if TYPE_CHECKING:
    from kerascv_tl.tasks.base import Task, TaskSetup

log = logging.getLogger(__name__)


def run_schedule(task: Task, setup: TaskSetup, verbose: int | None = None) -> None:
    """Head phase, then (fine_tune) the unfrozen phase; leaves `setup.model` holding the best weights.
    `verbose` is `model.fit`'s (default: `kerascv_tl.console.keras_verbose()`)."""
    config, train_config = setup.config, setup.config.train
    fine_tune = config.recipe == "fine_tune"
    train_data, val_data = task.training_data(setup), task.validation_data(setup)
    with setup.strategy.scope():
        freeze_for_head_phase(setup.model, setup.start)
    # Outside the strategy's scope: a task may run the frozen backbone here (classification's feature cache).
    trained, head_train, head_val = task.head_phase(setup, train_data, val_data)
    with setup.strategy.scope():
        task.compile(trained, setup, train_config.learning_rate)
    head_epochs = train_config.head_epochs if fine_tune else train_config.epochs
    about = f"learning rate {train_config.learning_rate:g}, backbone frozen"
    fit_phase(setup.run, "head", trained, head_train, head_val, head_epochs, train_config, verbose, about)
    if restore_best(setup.run, trained) and trained is not setup.model:
        # The checkpoint holds the head model's weights; keep it loadable into the whole task model.
        save_weights(setup.model, setup.run.best_weights)
    if not fine_tune:
        return
    with setup.strategy.scope():
        if setup.start is not None:
            unfreeze_all(setup.model)  # the neck and heads a preset start kept frozen; the backbone is set next
        blocks = unfreeze_backbone(setup.model, **parse_unfreeze(train_config.unfreeze))
        log.debug("unfroze %d backbone block(s): %s", len(blocks), ", ".join(blocks))
        schedule = warmup_cosine(
            train_config.fine_tune_learning_rate, train_config.epochs, train_config.warmup_epochs, train_data.steps
        )
        task.compile(setup.model, setup, schedule)
    warmup = f"{train_config.warmup_epochs} warmup epoch(s) + " if train_config.warmup_epochs else ""
    about = f"learning rate {train_config.fine_tune_learning_rate:g} ({warmup}cosine decay)"
    about += f", {len(blocks)} backbone block(s) unfrozen"
    fit_phase(
        setup.run, "fine_tune", setup.model, train_data, val_data, train_config.epochs, train_config, verbose, about
    )
    restore_best(setup.run, setup.model)
