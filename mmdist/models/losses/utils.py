# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Shared pieces of the distillation losses: argument checks and float32 probabilities."""
from typing import Optional

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


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """The dtype loss math runs in: float64 for float64 inputs, float32 for all others."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def logits_to_probs(logits: Tensor, activation: str, tau: float) -> Tensor:
    """Probabilities ``softmax(z / tau)`` over C, or element-wise ``sigmoid(z / tau)``.

    Args:
        logits: (N, C) logits of any floating dtype.
        activation: ``'softmax'`` or ``'sigmoid'``.
        tau: temperature.

    Returns:
        (N, C) probabilities in :func:`compute_dtype` (float32 for fp16/bf16 logits).
    """
    scaled = logits.to(compute_dtype(logits))
    if tau != 1.0:
        scaled = scaled / tau
    if activation == 'softmax':
        return scaled.softmax(dim=1)
    return scaled.sigmoid()


def autocast_disabled(tensor: Tensor) -> torch.autocast:
    """A context that turns autocast off for ``tensor``'s device type (loss math in fp32)."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)
