# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST on a matrix that fits in one cache-sized block, in few operations.

At a few thousand rows (a small image's FPN levels, one batch of RoIs, a low-resolution
logit map) every tensor operation costs its fixed dispatch time as much as its
arithmetic, so this path minimises the number of operations: student and teacher go
through every step as one stacked (2, C, N) tensor, group sums are matrix products with
a (G, N) membership matrix, and the loss itself is one autograd node. It computes what
the blockwise core of ``dist_loss.py`` computes (every sum over exactly centred values);
``dist_loss`` uses it when the whole matrix is a single block.
"""
import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

from .dist_terms import correlation, relation_loss
from .utils import compute_dtype


@functools.lru_cache(maxsize=32)
def group_membership(sizes: Tuple[int, ...], dtype: torch.dtype,
                     device: torch.device) -> Tensor:
    """(G, N) 0/1 matrix: row i belongs to group g (groups of consecutive rows).
    Built once per shape; callers must not modify it."""
    membership = torch.zeros(len(sizes), sum(sizes), dtype=dtype, device=device)
    start = 0
    for group, size in enumerate(sizes):
        membership[group, start:start + size] = 1
        start += size
    return membership


def _relations_forward(ctx, z_s: Tensor, z_t: Tensor, weight: Optional[Tensor], tau: float,
                       activation: str, eps: float, with_teacher_max: bool,
                       group_sizes: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Tensor]:
    """(N,) row and (C, G) column correlations and (G, C) teacher maxima; saves what
    :func:`_relations_backward` needs on ``ctx``.

    ``p`` = (2, C, N) probabilities (student, teacher), class-major; row-centred ``p_r``
    and group-column-centred ``p_c`` are kept for backward (a block is small).
    """
    num_rows, num_classes = z_s.shape
    dtype = compute_dtype(z_s)
    # (2C, N): the copy that stacks them is also the conversion to the compute dtype.
    p = torch.cat([z_s.t().to(dtype), z_t.t().to(dtype)])
    if tau != 1.0:
        p.div_(tau)
    p = p.view(2, num_classes, num_rows)
    p = p.softmax(1) if activation == 'softmax' else p.sigmoid_()
    num_groups = len(group_sizes)
    # (3, N + C*G) second moments (xy, xx, yy): rows first, then the columns of each group,
    # so that one call of `correlation` serves both.
    moments = p.new_empty(3, num_rows + num_classes * num_groups)
    rows, cols = moments[:, :num_rows], moments[:, num_rows:].view(3, num_classes, num_groups)
    # Rows: a softmax row sums to one, so its mean is 1/C.
    p_r = p - (1.0 / num_classes if activation == 'softmax' else p.mean(1, keepdim=True))
    torch.sum(p_r[0] * p_r[1], 0, out=rows[0])
    torch.sum(p_r.square(), 1, out=rows[1:])
    # Columns, per group: (G, N) membership times the row weights.
    membership = group_membership(group_sizes, dtype, z_s.device)
    rows_in = membership if weight is None else membership * weight
    flat = p.view(2 * num_classes, num_rows)
    totals = rows_in.sum(1).clamp_min(torch.finfo(dtype).tiny)  # (G,)
    means = flat @ rows_in.t() / totals  # (2C, G)
    p_c = (flat - means @ membership).view(2, num_classes, num_rows)
    torch.mm(p_c[0] * p_c[1], rows_in.t(), out=cols[0])
    cols[1:] = (p_c.square().view(2 * num_classes, num_rows) @ rows_in.t()).view(
        2, num_classes, num_groups)
    rho, inv, coef = correlation(*moments, eps)
    rho_r, rho_c = rho[:num_rows], rho[num_rows:].view(num_classes, num_groups)
    teacher_max = p.new_zeros(len(group_sizes), num_classes)
    if with_teacher_max:
        kept = p[1] if weight is None else p[1] * (weight > 0)
        start = 0
        for group, size in enumerate(group_sizes):
            if size:
                teacher_max[group] = kept[:, start:start + size].amax(1)
            start += size
    ctx.save_for_backward(p[0], p_r, p_c, rows_in, inv, coef)
    ctx.tau, ctx.activation, ctx.logit_dtype = tau, activation, z_s.dtype
    return rho_r, rho_c, teacher_max


def _relations_backward(ctx, grad_r: Tensor, grad_c: Tensor,
                        scale: Optional[Tensor] = None) -> Tensor:
    """(N, C) ``d L / d z_s`` from (N,) ``d L / d rho_r`` and (C, G) ``d L / d rho_c``,
    times ``scale`` (a scalar tensor) if given."""
    p_s, p_r, p_c, rows_in, inv, coef = ctx.saved_tensors
    num_classes, num_rows = p_s.shape
    inv_r, coef_r = inv[:num_rows], coef[:num_rows]
    inv_c, coef_c = inv[num_rows:].view(num_classes, -1), coef[num_rows:].view(num_classes, -1)
    # d L / d p_s = g_r (inv_r y_r - coef_r x_r) + w g_c (inv_c y_c - coef_c x_c)
    column = torch.cat([grad_c * inv_c, -grad_c * coef_c]) @ rows_in  # (2C, N)
    grad = p_c[1] * column[:num_classes]
    grad.addcmul_(p_c[0], column[num_classes:])
    grad.addcmul_(p_r[1], grad_r * inv_r).addcmul_(p_r[0], -grad_r * coef_r)
    if ctx.activation == 'softmax':
        grad.sub_((grad * p_s).sum(0)).mul_(p_s)
    else:
        grad.mul_(p_s - p_s.square())
    if scale is not None:
        grad.mul_(scale if ctx.tau == 1.0 else scale / ctx.tau)
    elif ctx.tau != 1.0:
        grad.div_(ctx.tau)
    return grad.t().to(ctx.logit_dtype)


class SmallDISTRelations(torch.autograd.Function):
    """Row and (weighted) per-group column Pearson correlations of activation(z / tau)
    for one block: the inputs and outputs of ``dist_loss._DISTRelations``."""

    @staticmethod
    def forward(ctx, z_s: Tensor, z_t: Tensor, weight: Optional[Tensor], tau: float,
                activation: str, eps: float, with_teacher_max: bool,
                group_sizes: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Tensor]:
        rho_r, rho_c, teacher_max = _relations_forward(ctx, z_s, z_t, weight, tau, activation,
                                                       eps, with_teacher_max, group_sizes)
        ctx.mark_non_differentiable(teacher_max)
        return rho_r, rho_c.t(), teacher_max

    @staticmethod
    def backward(ctx, grad_r: Tensor, grad_c: Tensor, _grad_max: Optional[Tensor]):
        return (_relations_backward(ctx, grad_r, grad_c.t()), ) + (None, ) * 7


class SmallDISTLoss(torch.autograd.Function):
    """The DIST loss (before ``tau^2``) of one block as a single autograd node.

    ``terms`` = ``(row_share, has_rows, inter_loss_weight, intra_loss_weight,
    intra_class_threshold)`` as :func:`relation_loss` takes them. The loss is a fixed
    weighting of the correlations, so its derivatives with respect to them are known in
    forward and backward only scales them. With ``per_group`` the output is the (G,)
    loss of each group instead of their sum.
    """

    @staticmethod
    def forward(ctx, z_s: Tensor, z_t: Tensor, weight: Optional[Tensor], tau: float,
                activation: str, eps: float, group_sizes: Tuple[int, ...],
                terms: tuple, per_group: bool = False) -> Tensor:
        row_share, has_rows, inter_loss_weight, intra_loss_weight, threshold = terms
        rho_r, rho_c, teacher_max = _relations_forward(ctx, z_s, z_t, weight, tau, activation,
                                                       eps, threshold is not None, group_sizes)
        membership = (group_membership(group_sizes, rho_r.dtype, rho_r.device)
                      if per_group else None)
        loss, class_share = relation_loss(
            rho_r, rho_c.t(), teacher_max, *terms,
            group_sums=(lambda values: membership @ values) if per_group else None)
        ctx.grad_rows = -inter_loss_weight * row_share  # (N,)
        ctx.grad_cols = -intra_loss_weight * class_share.t()  # (C, G)
        ctx.membership = membership
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        if ctx.membership is None:
            grad_z = _relations_backward(ctx, ctx.grad_rows, ctx.grad_cols, scale=grad_loss)
        else:  # (G,) gradient: each row and column scaled by that of its group
            grad_z = _relations_backward(ctx, ctx.grad_rows * (grad_loss @ ctx.membership),
                                         ctx.grad_cols * grad_loss)
        return (grad_z, ) + (None, ) * 8
