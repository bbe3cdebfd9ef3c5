# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Hinton knowledge distillation: KL(teacher || student) of tempered distributions."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor, nn

from mmdist.registry import MODELS
from .utils import (autocast_disabled, check_activation, check_groups, check_logits,
                    check_non_negative, check_positive)

REDUCTIONS = ('none', 'mean', 'sum')


def kd_loss_per_row(student_logits: Tensor, teacher_logits: Tensor, tau: float = 1.0,
                    activation: str = 'softmax') -> Tensor:
    """Per-row ``tau^2 * KL(p_t || p_s)`` with ``p = activation(z / tau)``.

    Args:
        student_logits: (N, C) logits.
        teacher_logits: (N, C) logits; detached here.
        tau: temperature.
        activation: ``'softmax'``: KL between categorical distributions over C;
            ``'sigmoid'``: sum over C of the KL between per-class Bernoulli distributions.

    Returns:
        (N,) float32 losses.
    """
    with autocast_disabled(student_logits):
        z_s = student_logits.float() / tau
        z_t = teacher_logits.detach().float() / tau
        if activation == 'softmax':
            log_p_s, log_p_t = z_s.log_softmax(dim=1), z_t.log_softmax(dim=1)
            kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
        else:
            # log sigmoid(z) and log(1 - sigmoid(z)) = log sigmoid(-z), stable at +-1e4.
            p_t = z_t.sigmoid()
            kl = (p_t * (F.logsigmoid(z_t) - F.logsigmoid(z_s)) +
                  (1 - p_t) * (F.logsigmoid(-z_t) - F.logsigmoid(-z_s))).sum(dim=1)
        return tau**2 * kl


@MODELS.register_module()
class KDLoss(nn.Module):
    """Hinton KD loss (``type='mmdist.KDLoss'``) with mmdet's loss signature.

    Rows and masks behave as in :class:`~mmdist.models.losses.DISTLoss`: with a row
    ``weight`` and no ``avg_factor``, ``'mean'`` averages over the weighted rows.

    Args:
        tau: temperature; the loss is scaled by ``tau**2``.
        loss_weight: overall multiplier.
        activation: ``'softmax'`` or ``'sigmoid'`` (see :func:`kd_loss_per_row`).
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 activation: str = 'softmax',
                 reduction: str = 'mean') -> None:
        super().__init__()
        self.tau = check_positive('tau', tau)
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self.activation = check_activation(activation)
        if reduction not in REDUCTIONS:
            raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
        self.reduction = reduction

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                groups: Optional[Sequence[int]] = None) -> Tensor:
        """Compute the loss.

        Args:
            student_logits: (N, C) logits.
            teacher_logits: (N, C) logits (detached).
            weight: optional (N,) row weights.
            avg_factor: divisor of the summed loss for ``'mean'``; defaults to the
                sum of ``weight`` when given, else N.
            reduction_override: overrides ``reduction`` for this call.
            groups: optional sizes of consecutive row groups (e.g. FPN levels): with
                ``'mean'``, the sum over groups of each group's mean (as one call per
                group); ``'sum'`` and ``'none'`` do not depend on groups.

        Returns:
            Scalar loss, or (N,) losses for ``'none'``.
        """
        if reduction_override not in (None, ) + REDUCTIONS:
            raise ValueError(f'reduction_override must be one of {REDUCTIONS} or None, '
                             f'got {reduction_override!r}')
        reduction = reduction_override or self.reduction
        check_logits(student_logits, teacher_logits, weight)
        loss = kd_loss_per_row(student_logits, teacher_logits, self.tau, self.activation)
        if weight is not None:
            weight = weight.detach().float()
        if groups is not None and reduction == 'mean':
            if avg_factor is not None:
                raise ValueError('KDLoss: avg_factor and groups cannot be combined (each '
                                 "group's mean has its own divisor)")
            sizes = check_groups(groups, loss.shape[0])
            row_weight = torch.ones_like(loss) if weight is None else weight
            means = [(w * l).sum() / w.sum().clamp_min(1e-12)
                     for l, w in zip(loss.split(sizes), row_weight.split(sizes))]
            return self.loss_weight * torch.stack(means).sum()
        if weight is not None and avg_factor is None and reduction == 'mean':
            avg_factor = weight.sum()
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
