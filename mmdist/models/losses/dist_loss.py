# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST: inter-class and intra-class Pearson relation between predicted distributions.

Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.
The math, shapes and deviations from the official code are in ``docs/losses.md``.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from mmdist.registry import MODELS
from .utils import (autocast_disabled, check_activation, check_logits, check_non_negative,
                    check_positive, logits_to_probs)


def pearson_correlation(x: Tensor, y: Tensor, dim: int, weight: Optional[Tensor] = None,
                        eps: float = 1e-8) -> Tensor:
    """Pearson correlation of ``x`` and ``y`` along ``dim``, optionally weighted.

    ``rho = cov(x, y) / max(sqrt(var(x) * var(y)), eps)`` with (weighted) sums, so a
    constant slice gives ``rho = 0`` with finite gradients.

    Args:
        x, y: (N, C) float tensors.
        dim: 1 correlates each row over its C columns; 0 each column over the N rows.
        weight: optional non-negative weights of the summed-over entries, shape (N, 1)
            for ``dim=0`` (per row) or (1, C) for ``dim=1``. 0/1 weights equal computing
            on the kept subset.
        eps: lower bound of the normaliser ``sqrt(var(x) * var(y))``.

    Returns:
        Correlations with ``dim`` reduced: (N,) for ``dim=1``, (C,) for ``dim=0``.
    """
    if weight is None:
        x = x - x.mean(dim, keepdim=True)
        y = y - y.mean(dim, keepdim=True)
        cov = (x * y).sum(dim)
        var_x = x.square().sum(dim)
        var_y = y.square().sum(dim)
    else:
        total = weight.sum(dim, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        x = x - (weight * x).sum(dim, keepdim=True) / total
        y = y - (weight * y).sum(dim, keepdim=True) / total
        weighted_x = weight * x
        cov = (weighted_x * y).sum(dim)
        var_x = (weighted_x * x).sum(dim)
        var_y = (weight * y.square()).sum(dim)
    return cov * torch.rsqrt((var_x * var_y).clamp_min(eps * eps))


def dist_loss(student_logits: Tensor,
              teacher_logits: Tensor,
              weight: Optional[Tensor] = None,
              inter_loss_weight: float = 1.0,
              intra_loss_weight: float = 1.0,
              tau: float = 1.0,
              activation: str = 'softmax',
              eps: float = 1e-8) -> Tensor:
    """DIST loss between two (N, C) logit matrices (rows = samples, columns = classes).

    ``L = tau^2 * (w_inter * (1 - mean_i rho(p_s[i, :], p_t[i, :]))
                 + w_intra * (1 - mean_c rho(p_s[:, c], p_t[:, c])))``
    with ``p = activation(z / tau)`` and ``rho`` the Pearson correlation.

    Args:
        student_logits: (N, C) student logits, any floating dtype.
        teacher_logits: (N, C) teacher logits; detached here.
        weight: optional (N,) non-negative row weights; rows of weight 0 (ignored
            pixels, padding, invalid RoIs) are left out of both terms. The inter term is
            the weighted mean over rows, the intra term correlates over weighted rows.
        inter_loss_weight, intra_loss_weight: weights of the two terms.
        tau: temperature.
        activation: ``'softmax'`` over C, or ``'sigmoid'`` per entry.
        eps: lower bound of the correlation's normaliser.

    Returns:
        Scalar float32 loss. With no row of positive weight it is a zero that still
        belongs to the autograd graph.
    """
    check_logits(student_logits, teacher_logits, weight)
    with autocast_disabled(student_logits):
        p_s = logits_to_probs(student_logits, activation, tau)
        p_t = logits_to_probs(teacher_logits.detach(), activation, tau)
        if weight is None:
            inter = 1 - pearson_correlation(p_s, p_t, dim=1, eps=eps).mean()
            intra = 1 - pearson_correlation(p_s, p_t, dim=0, eps=eps).mean()
        else:
            weight = weight.detach().float()
            total = weight.sum()
            rho_rows = pearson_correlation(p_s, p_t, dim=1, eps=eps)
            # sum(w * (1 - rho)) / sum(w): exactly 0 (in the graph) when every w is 0.
            inter = (weight * (1 - rho_rows)).sum() / total.clamp_min(1e-12)
            rho_cols = pearson_correlation(p_s, p_t, dim=0, weight=weight[:, None], eps=eps)
            intra = (1 - rho_cols.mean()) * (total > 0)
        return tau**2 * (inter_loss_weight * inter + intra_loss_weight * intra)


@MODELS.register_module()
class DISTLoss(nn.Module):
    """DIST loss module (``type='mmdist.DISTLoss'``).

    Args:
        inter_loss_weight: weight of the inter-class (per-row) relation term.
        intra_loss_weight: weight of the intra-class (per-column) relation term.
        tau: softmax/sigmoid temperature; the loss is scaled by ``tau**2``.
        loss_weight: overall multiplier.
        activation: ``'softmax'`` (classes compete: classifiers, RoI heads with C+1
            classes, segmentation) or ``'sigmoid'`` (independent per-class probabilities
            of dense sigmoid detection heads such as RetinaNet, FCOS, ATSS, GFL).
        eps: lower bound of the correlation's normaliser.

    Unlike mmdet's element-wise losses, DIST has no ``avg_factor`` or ``reduction``:
    both terms are means of correlations, normalised by construction.
    """

    def __init__(self,
                 inter_loss_weight: float = 1.0,
                 intra_loss_weight: float = 1.0,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 activation: str = 'softmax',
                 eps: float = 1e-8) -> None:
        super().__init__()
        self.inter_loss_weight = check_non_negative('inter_loss_weight', inter_loss_weight)
        self.intra_loss_weight = check_non_negative('intra_loss_weight', intra_loss_weight)
        self.tau = check_positive('tau', tau)
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self.activation = check_activation(activation)
        self.eps = check_positive('eps', eps)

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            student_logits: (N, C) logits.
            teacher_logits: (N, C) logits (detached).
            weight: optional (N,) row weights, 0 = row left out.

        Returns:
            Scalar float32 loss.
        """
        return self.loss_weight * dist_loss(
            student_logits,
            teacher_logits,
            weight=weight,
            inter_loss_weight=self.inter_loss_weight,
            intra_loss_weight=self.intra_loss_weight,
            tau=self.tau,
            activation=self.activation,
            eps=self.eps)

    def extra_repr(self) -> str:
        return (f'inter_loss_weight={self.inter_loss_weight}, '
                f'intra_loss_weight={self.intra_loss_weight}, tau={self.tau}, '
                f'loss_weight={self.loss_weight}, activation={self.activation!r}')
