# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Save torch's random number generator state in checkpoints, restore it on resume."""
from typing import Optional

import torch
from mmengine.hooks import Hook

from mmdist.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Make a resumed run draw the same model-side random numbers as an uninterrupted one.

    mmengine re-seeds on resume but does not restore generator states, so dropout, drop
    path or RoI sampling after a resume differ from the uninterrupted run. This hook stores
    torch's CPU (and CUDA, per device of this rank) generator state as
    ``checkpoint['rng_state']`` and restores it when resuming.

    The data pipeline's numpy draws are not restored here on purpose: on resume mmengine's
    iteration-based loop replays the skipped batches through the pipeline, which consumes
    the numpy generator exactly as the original run did.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state: Optional[dict] = checkpoint.get('rng_state')
        if not runner._resume or state is None:  # load_from (fine-tuning) keeps its seed
            return
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
