# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Argument checks, row groups, compute dtype and ``torch.compile`` policy of the losses."""
import numbers
import os
import warnings
from typing import Callable, ContextManager, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch._dynamo.exc import TorchDynamoException

ACTIVATIONS = ('softmax', 'sigmoid')
#: Set to 0 to run the losses in eager mode (no ``torch.compile``) in every process.
COMPILE_ENV = 'MMDIST_COMPILE'


def check_activation(activation: str) -> str:
    """Return ``activation`` or raise naming the ``activation`` config key."""
    if activation not in ACTIVATIONS:
        raise ValueError(f'activation must be one of {ACTIVATIONS}, got {activation!r}')
    return activation


def check_number(name: str, value, positive: bool = False) -> float:
    """``value`` as a float if it is a number >= 0 (> 0 if ``positive``), else an error
    naming the config key ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be a number, got {value!r}')
    if not (value > 0 if positive else value >= 0):
        raise ValueError(f'{name} must be {">" if positive else ">="} 0, got {value!r}')
    return float(value)


def check_logits(student_logits: Tensor, teacher_logits: Tensor,
                 weight: Optional[Tensor]) -> None:
    """Check that logits are (N, C) of equal shape with N >= 1 and ``weight`` is (N,)."""
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError('student and teacher logits must both have shape (N, C); got '
                         f'{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}')
    if student_logits.shape[0] == 0:
        raise ValueError('the logits have no rows (N = 0): a distillation loss needs at '
                         'least one sample')
    if weight is not None and weight.shape != student_logits.shape[:1]:
        raise ValueError(f'weight must have shape (N,) = ({student_logits.shape[0]},), '
                         f'got {tuple(weight.shape)}')


def group_membership(groups: Optional[Sequence[int]], num_rows: int, dtype: torch.dtype,
                     device: torch.device) -> Tuple[Tensor, Tensor]:
    """(G, N) 0/1 membership and (N,) group index of groups of consecutive rows (sizes
    ``groups`` adding up to N; all rows for ``None``). The sizes are data, not code:
    nothing recompiles when they change, and no host-to-device copy waits for the GPU."""
    sizes = [num_rows] if groups is None else [int(size) for size in groups]
    if not sizes or min(sizes) < 0 or sum(sizes) != num_rows:
        raise ValueError('groups must be non-negative sizes of consecutive row groups that '
                         f'add up to N = {num_rows}, got {list(groups)!r}')
    if len(sizes) == 1:  # the common case, in two fills
        return (torch.ones(1, num_rows, dtype=dtype, device=device),
                torch.zeros(num_rows, dtype=torch.long, device=device))
    row_group = torch.cat([torch.full((size, ), group, device=device)
                           for group, size in enumerate(sizes)])
    return torch.nn.functional.one_hot(row_group, len(sizes)).t().to(dtype), row_group


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """The dtype loss math runs in: float64 for float64 inputs, float32 for all others."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def autocast_disabled(tensor: Tensor) -> ContextManager:
    """A context that turns autocast off for ``tensor``'s device type (loss math in fp32)."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


class CompiledOrEager:
    """``fn`` through ``torch.compile`` (dynamic shapes once sizes change), or eager with
    ``compile=False``, ``MMDIST_COMPILE=0`` or, warning once, when tracing or compiling fails
    (no C++ compiler, no Triton, an old torch). The compiled code's own errors are raised."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.compiled, self.failed = fn, None, False

    def __call__(self, *args, compile: bool = True):
        enabled = os.environ.get(COMPILE_ENV, '1').lower() not in ('0', 'false', 'no', 'off')
        if compile and enabled and not self.failed:
            try:
                if self.compiled is None:
                    self.compiled = torch.compile(self.fn)
                return self.compiled(*args)
            except Exception as err:
                if self.compiled is not None and not isinstance(err, TorchDynamoException):
                    raise  # not a failure to trace or compile: the compiled code's own
                self.failed = True
                warnings.warn(f'torch.compile of mmdist {self.fn.__name__} failed, running it '
                              f'in eager mode from now on ({type(err).__name__}: {err}); set '
                              f'{COMPILE_ENV}=0 to skip compiling')
        return self.fn(*args)
