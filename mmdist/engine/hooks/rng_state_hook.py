# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Save the random number generators' states in checkpoints, restore them on resume."""
import random
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

from mmdist.registry import HOOKS


def capture_rng_state() -> Dict:
    """torch's CPU (and CUDA) generators, numpy's and python's global generators.

    Everything is stored as tensors and plain numbers, so the checkpoint loads with
    ``torch.load(weights_only=True)``.
    """
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), cached_gaussian=float(cached_gaussian)),
        python=dict(version=version, internal=torch.tensor(internal, dtype=torch.int64),
                    gauss_next=gauss_next))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict, host_generators: bool = True) -> None:
    """Set the generators captured by :func:`capture_rng_state`.

    Args:
        state: as returned by :func:`capture_rng_state` (checkpoints written before numpy
            and python states were saved hold only ``torch`` / ``cuda``).
        host_generators: also restore numpy's and python's global generators.
    """
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    if host_generators and 'numpy' in state:
        saved = state['numpy']
        np.random.set_state(('MT19937', saved['keys'].numpy().astype(np.uint32), saved['pos'],
                             saved['has_gauss'], saved['cached_gaussian']))
    if host_generators and 'python' in state:
        saved = state['python']
        random.setstate((saved['version'], tuple(saved['internal'].tolist()),
                         saved['gauss_next']))


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Make a resumed run draw the same random numbers as an uninterrupted one.

    mmengine re-seeds on resume but does not restore generator states, so dropout, RoI
    sampling and data augmentation after a resume differ from the uninterrupted run. This
    hook stores torch's CPU (and CUDA, per device of this rank), numpy's and python's
    ``random`` generator states as ``checkpoint['rng_state']`` and restores them when
    resuming:

    * torch's generators always;
    * numpy and ``random`` for loops that start the data pipeline afresh (epoch-based).
      mmengine's ``IterBasedTrainLoop`` replays the skipped batches through the pipeline
      on resume, which consumes these generators exactly as the original run did;
      restoring them too would count those draws twice.

    Validation runs between a checkpoint and the next training iteration but not in the
    resumed run, so the hook also gives the training generators back their state after
    each validation (and checkpoints saved during validation, e.g. the best one, store
    the state from before it).

    Dataloader workers are seeded by mmengine from (seed, rank, worker id) when they
    start, i.e. every epoch unless ``persistent_workers=True``; a persistent worker's
    generators live in its own process and cannot be checkpointed.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._before_val: Optional[Dict] = None

    def before_val(self, runner) -> None:
        self._before_val = capture_rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_rng_state(self._before_val)
            self._before_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = self._before_val or capture_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state: Optional[dict] = checkpoint.get('rng_state')
        if not runner._resume or state is None:  # load_from (fine-tuning) keeps its seed
            return
        restore_rng_state(state, host_generators=not isinstance(runner.train_loop,
                                                                IterBasedTrainLoop))
