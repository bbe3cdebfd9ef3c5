# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST (Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022):
inter- and intra-class Pearson relations of predicted distributions, as plain torch code
run through ``torch.compile``. Math, options and deviations: ``docs/losses.md``."""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmdist.registry import MODELS
from .kd_loss import kl_divergence
from .utils import (CompiledOrEager, autocast_disabled, check_activation, check_logits,
                    check_number, compute_dtype, group_membership)


def pearson(s_xy: Tensor, s_xy_norms: Tensor, eps: float) -> Tensor:
    """``s_xy / (sqrt(s_xx s_yy) + eps)`` from sums of centred products, as the official
    code's ``cos(a - mean, b - mean)``; ``s_xy_norms = s_xx * s_yy``, floored at the
    dtype's smallest normal number so that a constant vector has a finite gradient."""
    tiny = torch.finfo(s_xy_norms.dtype).tiny
    return s_xy / (s_xy_norms.clamp_min(tiny).sqrt() + eps)


def group_sums(values: Tensor, members: Tensor) -> Tensor:
    """(G, C) sums of (N, C) ``values`` over each group's rows, weighted by (G, N) members."""
    return torch.stack([(m[:, None] * values).sum(0) for m in members])


def dist_relations(p_s: Tensor, p_t: Tensor, members: Tensor, row_group: Tensor,
                   eps: float = 1e-8) -> Tuple[Tensor, Tensor]:
    """(N,) Pearson correlations of the rows (inter-class) and (G, C) ones of each group's
    weighted columns (intra-class) of (N, C) probabilities ``p_s``, ``p_t``; ``members``
    (G, N) is the weight of row i in its group (0 in the others), ``row_group`` (N,) each
    row's group. A column mean is row 0 plus the mean difference from it: float32 sums
    of many values near 1 would lose the precision of their spread. Means are detached:
    sums of products of centred values have zero derivative with respect to them."""
    x, y = (p - p.mean(1, keepdim=True).detach() for p in (p_s, p_t))
    rho_rows = pearson((x * y).sum(1), (x * x).sum(1) * (y * y).sum(1), eps)
    total = members.sum(1, keepdim=True).clamp_min(torch.finfo(p_s.dtype).tiny)

    def centred(p: Tensor) -> Tensor:
        p0 = p.detach()
        return p - (p0[:1] + group_sums(p0 - p0[:1], members) / total)[row_group]

    x, y = centred(p_s), centred(p_t)
    rho_cols = pearson(group_sums(x * y, members),
                       group_sums(x * x, members) * group_sums(y * y, members), eps)
    return rho_rows, rho_cols


@CompiledOrEager
def _group_losses(z_s: Tensor, z_t: Tensor, members: Tensor, row_group: Tensor,
                  inter_loss_weight: float, intra_loss_weight: float, tau: float,
                  activation: str, eps: float, kl_weight: float,
                  intra_class_threshold: Optional[float]) -> Tensor:
    """(G,) DIST loss of each row group from (N, C) logits of the compute dtype."""
    z_s, z_t = z_s / tau, z_t / tau
    p_s, p_t = (z.softmax(1) if activation == 'softmax' else z.sigmoid() for z in (z_s, z_t))
    rho_rows, rho_cols = dist_relations(p_s, p_t, members, row_group, eps)
    total = members.sum(1)  # (G,)
    shares = members / total.clamp_min(torch.finfo(total.dtype).tiny)[:, None]  # (G, N)
    has_rows = (total > 0).to(total.dtype)[:, None]  # a group without weight adds 0
    if intra_class_threshold is None:
        class_weights = has_rows / p_s.shape[1]
    else:  # the classes the teacher predicts (>= threshold) on a kept row of the group
        teacher_max = torch.stack([torch.where(m[:, None] > 0, p_t, 0).amax(0) for m in members])
        present = (teacher_max >= intra_class_threshold).to(total.dtype)
        class_weights = present * has_rows / present.sum(1, keepdim=True).clamp_min(1)
    loss = (inter_loss_weight * (shares * (1 - rho_rows)).sum(1) +
            intra_loss_weight * (class_weights * (1 - rho_cols)).sum(1))
    if kl_weight > 0:
        loss = loss + kl_weight * (shares * kl_divergence(z_s, z_t, activation)).sum(1)
    return tau**2 * loss


def dist_loss(student_logits: Tensor, teacher_logits: Tensor, weight: Optional[Tensor] = None,
              inter_loss_weight: float = 1.0, intra_loss_weight: float = 1.0, tau: float = 1.0,
              activation: str = 'softmax', eps: float = 1e-8, kl_weight: float = 0.0,
              intra_class_threshold: Optional[float] = None,
              groups: Optional[Sequence[int]] = None, reduce_groups: bool = True,
              compile: bool = True) -> Tensor:
    """DIST loss between two (N, C) logit matrices (rows = samples, columns = classes).

    ``L = tau^2 * (w_inter * (1 - mean_i rho(p_s[i, :], p_t[i, :]))
                 + w_intra * (1 - mean_c rho(p_s[:, c], p_t[:, c])))``
    with ``p = activation(z / tau)`` and ``rho`` the Pearson correlation.

    Args:
        student_logits: (N, C) student logits, any floating dtype, N >= 1.
        teacher_logits: (N, C) teacher logits; detached here.
        weight: optional (N,) row weights >= 0; rows of weight 0 (ignored pixels,
            padding) are left out: the inter term is a weighted mean over rows, the intra
            term a weighted correlation over rows.
        inter_loss_weight, intra_loss_weight: weights of the two terms.
        tau: temperature.
        activation: ``'softmax'`` over C, or ``'sigmoid'`` per entry.
        eps: added to ``sqrt(s_xx * s_yy)``, the product of the centred vectors' norms
            (sums over a row's classes; weighted sums over a column's rows), as the
            official code adds it.
        kl_weight: lambda of the KL anchor ``+ lambda tau^2 mean_i KL(p_t || p_s)``.
        intra_class_threshold: if set, the intra term averages only over the classes the
            teacher gives at least this probability on some kept row.
        groups: sizes of groups of consecutive rows (e.g. FPN levels): the loss is the
            sum of each group's loss, as one call per group.
        reduce_groups: if False, return the (G,) loss of each group instead of their sum.
        compile: through ``torch.compile`` (unless ``MMDIST_COMPILE=0``); same values.

    Returns:
        Scalar float32 loss (float64 for float64 logits), (G,) with ``reduce_groups=False``;
        a group without weight adds a zero that stays in the autograd graph.
    """
    check_logits(student_logits, teacher_logits, weight)
    dtype = compute_dtype(student_logits)
    members, row_group = group_membership(groups, student_logits.shape[0], dtype,
                                          student_logits.device)
    if weight is not None:
        members = members * weight.detach().to(dtype)
    with autocast_disabled(student_logits):
        losses = _group_losses(
            student_logits.to(dtype), teacher_logits.detach().to(dtype), members, row_group,
            inter_loss_weight, intra_loss_weight, tau, activation, eps, kl_weight,
            intra_class_threshold, compile=compile)
    return losses.sum() if reduce_groups else losses


@MODELS.register_module()
class DISTLoss(nn.Module):
    """``type='mmdist.DISTLoss'``: ``loss_weight`` times :func:`dist_loss` with these
    settings. ``activation``: ``'softmax'`` (classifiers, RoI heads, segmentation) or
    ``'sigmoid'`` (RetinaNet, FCOS, ATSS, GFL heads). No ``avg_factor`` or ``reduction``:
    both terms are means of correlations."""

    def __init__(self, inter_loss_weight: float = 1.0, intra_loss_weight: float = 1.0,
                 tau: float = 1.0, loss_weight: float = 1.0, activation: str = 'softmax',
                 eps: float = 1e-8, kl_weight: float = 0.0,
                 intra_class_threshold: Optional[float] = None, compile: bool = True) -> None:
        super().__init__()
        self.inter_loss_weight = check_number('inter_loss_weight', inter_loss_weight)
        self.intra_loss_weight = check_number('intra_loss_weight', intra_loss_weight)
        self.tau = check_number('tau', tau, positive=True)
        self.loss_weight = check_number('loss_weight', loss_weight)
        self.activation = check_activation(activation)
        self.eps = check_number('eps', eps, positive=True)
        self.kl_weight = check_number('kl_weight', kl_weight)
        if intra_class_threshold is not None and not 0 <= check_number(
                'intra_class_threshold', intra_class_threshold) <= 1:
            raise ValueError('intra_class_threshold must be None or in [0, 1], got '
                             f'{intra_class_threshold!r}')
        self.intra_class_threshold = intra_class_threshold
        if not isinstance(compile, bool):
            raise TypeError(f'compile must be True or False, got {compile!r}')
        self.use_compile = compile

    def settings(self) -> dict:
        """The keyword arguments of :func:`dist_loss` this module passes."""
        names = ('inter_loss_weight', 'intra_loss_weight', 'tau', 'activation', 'eps',
                 'kl_weight', 'intra_class_threshold')
        return dict({name: getattr(self, name) for name in names}, compile=self.use_compile)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor,
                weight: Optional[Tensor] = None, groups: Optional[Sequence[int]] = None,
                reduce_groups: bool = True) -> Tensor:
        """(N, C) student and teacher logits, optional (N,) row weights (0 = left out)
        and group sizes -> scalar loss ((G,) with ``reduce_groups=False``)."""
        return self.loss_weight * dist_loss(student_logits, teacher_logits, weight,
                                            groups=groups, reduce_groups=reduce_groups,
                                            **self.settings())

    def extra_repr(self) -> str:
        return ', '.join(f'{name}={value!r}' for name, value in self.settings().items())
