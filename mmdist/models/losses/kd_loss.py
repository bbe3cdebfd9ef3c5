# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Hinton knowledge distillation: KL(teacher || student) of tempered distributions."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdist.registry import MODELS
from .utils import (autocast_disabled, check_activation, check_logits, check_number,
                    compute_dtype, group_membership)

REDUCTIONS = ('none', 'mean', 'sum')


def kl_divergence(z_s: Tensor, z_t: Tensor, activation: str) -> Tensor:
    """(N,) ``KL(p_t || p_s)`` per row of (N, C) logits, ``p = activation(z)``: between
    categorical distributions over C (softmax), or summed over C between per-class
    Bernoulli distributions (sigmoid; ``log(1 - sigmoid(z)) = logsigmoid(-z)``, stable
    at +-1e4). Computed in the logits' dtype."""
    if activation == 'softmax':
        log_p_s, log_p_t = z_s.log_softmax(1), z_t.log_softmax(1)
        return (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)
    p_t = z_t.sigmoid()
    return (p_t * (F.logsigmoid(z_t) - F.logsigmoid(z_s)) +
            (1 - p_t) * (F.logsigmoid(-z_t) - F.logsigmoid(-z_s))).sum(1)


def kd_loss_per_row(student_logits: Tensor, teacher_logits: Tensor, tau: float = 1.0,
                    activation: str = 'softmax') -> Tensor:
    """(N,) ``tau^2 * KL(p_t || p_s)`` with ``p = activation(z / tau)`` of (N, C) logits
    (teacher detached), in float32 (float64 for float64 logits) even under autocast."""
    dtype = compute_dtype(student_logits)
    with autocast_disabled(student_logits):
        return tau**2 * kl_divergence(student_logits.to(dtype) / tau,
                                      teacher_logits.detach().to(dtype) / tau, activation)


@MODELS.register_module()
class KDLoss(nn.Module):
    """``type='mmdist.KDLoss'``: Hinton KD, ``loss_weight`` times :func:`kd_loss_per_row`
    reduced with ``reduction`` (``'mean'``, ``'sum'`` or ``'none'``), with mmdet's loss
    signature. A row ``weight`` makes ``'mean'`` the weighted mean, so masks behave as in
    :class:`~mmdist.models.losses.DISTLoss`."""

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0, activation: str = 'softmax',
                 reduction: str = 'mean') -> None:
        super().__init__()
        self.tau = check_number('tau', tau, positive=True)
        self.loss_weight = check_number('loss_weight', loss_weight)
        self.activation = check_activation(activation)
        if reduction not in REDUCTIONS:
            raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
        self.reduction = reduction

    def forward(self, student_logits: Tensor, teacher_logits: Tensor,
                weight: Optional[Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                groups: Optional[Sequence[int]] = None) -> Tensor:
        """(N, C) student and teacher logits (the teacher's detached) and optional (N,)
        row weights -> scalar loss ((N,) for ``'none'``). ``'mean'`` divides by
        ``avg_factor`` (default: the sum of ``weight``, else N); with ``groups`` (sizes of
        consecutive row groups, e.g. FPN levels) it is the sum of each group's mean, as
        one call per group."""
        if reduction_override not in (None, ) + REDUCTIONS:
            raise ValueError(f'reduction_override must be one of {REDUCTIONS} or None, '
                             f'got {reduction_override!r}')
        reduction = reduction_override or self.reduction
        check_logits(student_logits, teacher_logits, weight)
        loss = kd_loss_per_row(student_logits, teacher_logits, self.tau, self.activation)
        weight = torch.ones_like(loss) if weight is None else weight.detach().to(loss.dtype)
        if reduction != 'mean':
            return self.loss_weight * (loss * weight if reduction == 'none' else
                                       (loss * weight).sum())
        if groups is not None and avg_factor is not None:
            raise ValueError('KDLoss: avg_factor and groups cannot be combined (each '
                             "group's mean has its own divisor)")
        members = group_membership(groups, loss.shape[0], loss.dtype, loss.device)[0] * weight
        divisor = members.sum(1) if avg_factor is None else torch.as_tensor(
            avg_factor, dtype=loss.dtype, device=loss.device)
        return self.loss_weight * ((members * loss).sum(1) / divisor.clamp_min(1e-12)).sum()
