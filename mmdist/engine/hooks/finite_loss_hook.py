# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Stop training on the first non-finite loss of any rank, naming iteration, rank and term."""
import math
from typing import Dict, Optional

import torch
from mmengine.dist import all_gather_object, all_reduce, get_world_size
from mmengine.hooks import Hook

from mmdist.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """A logged loss term became NaN or infinite (on any rank)."""


def non_finite_terms(outputs: Optional[dict]) -> Dict[str, float]:
    """The loss terms of ``outputs`` (mmengine's ``log_vars``) that are NaN or +-inf."""
    values = {name: float(value.detach() if torch.is_tensor(value) else value)
              for name, value in (outputs or {}).items() if 'loss' in name}
    bad = {name: value for name, value in values.items() if not math.isfinite(value)}
    # Name the terms that went non-finite, not just the total they were summed into.
    return {name: value for name, value in bad.items() if name != 'loss'} or bad


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` on every rank when any rank's loss is not finite.

    After each iteration every rank reduces "one of my loss terms is NaN or infinite" to
    one flag agreed by all ranks (one all-reduce of a single number per iteration; nothing
    in single-process runs), so all ranks stop at the same iteration and none goes on to
    save a checkpoint. It runs before the checkpoint hook: no checkpoint of the failing
    iteration is written; earlier ones stay. (The parameters and optimizer state written
    into a checkpoint are checked separately, right before each save, by
    ``mmdist.SafeCheckpointHook``.)
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        bad = non_finite_terms(outputs)
        flag = torch.tensor([1.0 if bad else 0.0])
        all_reduce(flag, op='max')  # a no-op in single-process runs
        if not flag.item():
            return
        world_size = get_world_size()
        described = []
        for rank, terms in enumerate(all_gather_object(bad)):
            for name, value in terms.items():
                where = f' on rank {rank}' if world_size > 1 else ''
                described.append(f'{name!r} is {value}{where}')
        raise NonFiniteLossError(
            f'iteration {runner.iter + 1}: loss term {", ".join(described)}; training '
            'stopped before saving a checkpoint of this iteration (see '
            'docs/run_lifecycle.md, "Non-finite losses and weights")')
