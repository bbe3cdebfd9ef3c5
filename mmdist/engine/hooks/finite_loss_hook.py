# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Stop training on the first non-finite loss, naming the iteration and the loss term."""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook

from mmdist.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """A logged loss term became NaN or infinite."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when any logged loss term is NaN or infinite.

    It reads the loss values of the iteration's log (mmengine's runtime-info hook has
    already synchronised them for logging) and runs before the checkpoint hook, so no
    checkpoint holding non-finite weights is written after the failing iteration;
    earlier checkpoints stay.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        values = {name: float(value.detach() if torch.is_tensor(value) else value)
                  for name, value in (outputs or {}).items() if 'loss' in name}
        bad = {name: value for name, value in values.items() if not math.isfinite(value)}
        if not bad:
            return
        # Name the terms that went non-finite, not just the total they were summed into.
        terms = {name: value for name, value in bad.items() if name != 'loss'} or bad
        described = ', '.join(f'{name!r} is {value}' for name, value in terms.items())
        raise NonFiniteLossError(
            f'iteration {runner.iter + 1}: loss term {described}; training stopped before '
            'saving a checkpoint of this iteration (see docs/run_lifecycle.md, '
            '"Non-finite losses")')
