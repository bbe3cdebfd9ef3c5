# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .checkpoint_hook import NonFiniteStateError, SafeCheckpointHook
from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .rng_state_hook import RNGStateHook
from .stop_distill_hook import StopDistillHook

__all__ = [
    'FiniteLossHook', 'NonFiniteLossError', 'NonFiniteStateError', 'RNGStateHook',
    'SafeCheckpointHook', 'StopDistillHook'
]
