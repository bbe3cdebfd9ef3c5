# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Train the student alone for the last epochs: distillation stops at ``stop_epoch``."""
import logging

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from mmdist.registry import HOOKS


@HOOKS.register_module()
class StopDistillHook(Hook):
    """From epoch ``stop_epoch`` (0-based, as mmdet's ``PipelineSwitchHook`` counts
    ``switch_epoch``) the distiller trains the student alone: the teacher no longer runs
    and every ``loss_dist_*`` term is 0 (logged as 0). RTMDet-style recipes end with
    epochs of the student's own losses, e.g.
    ``dict(type='mmdist.StopDistillHook', stop_epoch=max_epochs - stage2_num_epochs)``
    stops distilling when the RTMDet configs switch to their second-stage pipeline.

    Set on every epoch start from the runner's epoch, so a resumed run is in the right
    state.

    Args:
        stop_epoch: the first epoch trained without distillation.
    """

    priority = 'NORMAL'

    def __init__(self, stop_epoch: int) -> None:
        if isinstance(stop_epoch, bool) or not isinstance(stop_epoch, int) or stop_epoch < 0:
            raise ValueError(f'StopDistillHook.stop_epoch: expected an epoch >= 0, got '
                             f'{stop_epoch!r}')
        self.stop_epoch = stop_epoch

    def before_train(self, runner) -> None:
        from mmdist.models.distillers import BaseDistiller
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, BaseDistiller):
            raise TypeError(f'StopDistillHook (custom_hooks): the model is a '
                            f'{type(model).__name__}, not an mmdist distiller')
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise TypeError('StopDistillHook.stop_epoch: the run trains by iterations '
                            f'({type(runner.train_loop).__name__}); it counts epochs')

    def before_train_epoch(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        stopped = runner.epoch >= self.stop_epoch
        if stopped and not model.distill_stopped:
            print_log(f'StopDistillHook: epoch {runner.epoch + 1} and later train the student '
                      'alone (no teacher forward, loss_dist_* = 0)', 'current',
                      level=logging.INFO)
        model.distill_stopped = stopped
