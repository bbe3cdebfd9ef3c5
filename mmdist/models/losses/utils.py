# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Shared pieces of the distillation losses: argument checks and the compute dtype."""
import contextlib
from typing import ContextManager, List, Optional, Sequence

import torch
from torch import Tensor

ACTIVATIONS = ('softmax', 'sigmoid')


def check_activation(activation: str) -> str:
    """Return ``activation`` or raise naming the ``activation`` config key."""
    if activation not in ACTIVATIONS:
        raise ValueError(f'activation must be one of {ACTIVATIONS}, got {activation!r}')
    return activation


def check_positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f'{name} must be > 0, got {value!r}')
    return float(value)


def check_non_negative(name: str, value: float) -> float:
    if not value >= 0:
        raise ValueError(f'{name} must be >= 0, got {value!r}')
    return float(value)


def check_logits(student_logits: Tensor, teacher_logits: Tensor,
                 weight: Optional[Tensor]) -> None:
    """Check that logits are (N, C) of equal shape and ``weight`` is (N,)."""
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError('student and teacher logits must both have shape (N, C); got '
                         f'{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}')
    if weight is not None and weight.shape != student_logits.shape[:1]:
        raise ValueError(f'weight must have shape (N,) = ({student_logits.shape[0]},), '
                         f'got {tuple(weight.shape)}')


def check_groups(groups: Optional[Sequence[int]], num_rows: int) -> List[int]:
    """Sizes of groups of consecutive rows as ints; ``[num_rows]`` for ``None``."""
    if groups is None:
        return [num_rows]
    sizes = [int(size) for size in groups]
    if not sizes or min(sizes) < 0 or sum(sizes) != num_rows:
        raise ValueError('groups must be non-negative sizes of consecutive row groups that '
                         f'add up to N = {num_rows}, got {list(groups)!r}')
    return sizes


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """The dtype loss math runs in: float64 for float64 inputs, float32 for all others."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def autocast_disabled(tensor: Tensor) -> ContextManager:
    """A context that turns autocast off for ``tensor``'s device type (loss math in fp32);
    nothing to do when it is off already."""
    device_type = tensor.device.type
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)
