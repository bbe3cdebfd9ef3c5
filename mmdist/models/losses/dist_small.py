# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST on a matrix that fits in one cache-sized block, in few operations.

At a few thousand rows (a small image's FPN levels, one batch of RoIs, a low-resolution
logit map) every tensor operation costs its fixed dispatch time as much as its
arithmetic, so this path minimises the number of operations: student and teacher, and
row- and column-centred values, go through every step as stacked tensors; group sums
are matrix products with (G, N) membership matrices; and the loss is one autograd node
whose gradient, a fixed weighting of the correlations' gradients, is computed in
forward, so that backward only scales it. It computes what the blockwise core of
``dist_loss.py`` computes (every sum over exactly centred values); ``dist_loss`` uses it
when the whole matrix is a single block.
"""
import functools
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .dist_terms import correlation, relation_weights
from .utils import compute_dtype


class GroupMatrices(NamedTuple):
    """Groups of consecutive rows as (G, N) matrices (and their per-group sums)."""
    membership: Tensor  #: (G, N) 1 where row i belongs to group g, else 0.
    weights: Tensor  #: (G, N) the row weight ``w_i`` in its group's row.
    shares: Tensor  #: (G, N) ``w_i / W_g`` in its group's row (0 for a weightless group).
    row_share: Tensor  #: (N,) ``w_i / W_g(i)``.
    has_rows: Tensor  #: (G,) 1 for groups with weight, else 0.


@functools.lru_cache(maxsize=32)
def _unweighted_groups(sizes: Tuple[int, ...], dtype: torch.dtype,
                       device: torch.device) -> GroupMatrices:
    """:class:`GroupMatrices` of weight 1, built once per shape (callers must not modify
    it)."""
    membership = torch.zeros(len(sizes), sum(sizes), dtype=dtype, device=device)
    start = 0
    for group, size in enumerate(sizes):
        membership[group, start:start + size] = 1
        start += size
    counts = membership.sum(1)
    shares = membership / counts.clamp_min(1)[:, None]
    return GroupMatrices(membership, membership, shares, shares.sum(0), (counts > 0).to(dtype))


def group_matrices(sizes: Tuple[int, ...], weight: Optional[Tensor], dtype: torch.dtype,
                   device: torch.device) -> GroupMatrices:
    """:class:`GroupMatrices` of groups of ``sizes`` consecutive rows with (N,) ``weight``."""
    groups = _unweighted_groups(sizes, dtype, device)
    if weight is None:
        return groups
    weights = groups.membership * weight
    totals = weights.sum(1)  # (G,)
    shares = weights / totals.clamp_min(torch.finfo(dtype).tiny)[:, None]
    return GroupMatrices(groups.membership, weights, shares, shares.sum(0),
                         (totals > 0).to(dtype))


class _Block(NamedTuple):
    """What one block's forward computes and its gradient needs."""
    probs: Tensor  #: (2, C, N) probabilities, student then teacher, class-major.
    centred: Tensor  #: (2, 2, C, N) row-centred then group-column-centred ``probs``.
    rho: Tensor  #: (N + C*G,) row correlations, then column ones laid out (C, G).
    inv: Tensor  #: (N + C*G,) ``1 / max(sqrt(s_xx s_yy), eps)``.
    coef: Tensor  #: (N + C*G,) ``rho / s_xx`` (0 where the normaliser is clamped).


def _block_correlations(z_s: Tensor, z_t: Tensor, groups: GroupMatrices, tau: float,
                        activation: str, eps: float) -> _Block:
    """Row and per-group (weighted) column Pearson correlations of (N, C) logits."""
    num_rows, num_classes = z_s.shape
    dtype = groups.membership.dtype
    # (2C, N): the copy that stacks them is also the conversion to the compute dtype.
    flat = torch.cat([z_s.t(), z_t.t()] if z_s.dtype == z_t.dtype == dtype else
                     [z_s.t().to(dtype), z_t.t().to(dtype)])
    if tau != 1.0:
        flat.div_(tau)
    probs = flat.view(2, num_classes, num_rows)
    if activation == 'softmax':
        probs = probs.softmax(1)
        flat = probs.view(2 * num_classes, num_rows)
    else:
        flat.sigmoid_()
    centred = flat.new_empty(2, 2, num_classes, num_rows)
    # Rows: a softmax row sums to one, so its mean is 1/C.
    torch.sub(probs, 1.0 / num_classes if activation == 'softmax' else
              probs.mean(1, keepdim=True), out=centred[0])
    # Columns: minus the (weighted) mean of the row's group.
    torch.addmm(flat, flat @ groups.shares.t(), groups.membership, alpha=-1,
                out=centred[1].view(2 * num_classes, num_rows))
    # (x x, x y, y y) of both centrings, summed over classes (rows) and over each
    # group's weighted rows (columns): the (3, N + C*G) second moments.
    products = flat.new_empty(2, 3, num_classes, num_rows)
    torch.mul(centred[:, :1], centred, out=products[:, :2])
    torch.square(centred[:, 1], out=products[:, 2])
    moments = torch.cat([products[0].sum(1), (products[1].view(3 * num_classes, num_rows)
                                              @ groups.weights.t()).view(3, -1)], 1)
    rho, inv, coef = correlation(moments[1], moments[0], moments[2], eps)
    return _Block(probs, centred, rho, inv, coef)


def _logits_grad(block: _Block, grad_rho: Tensor, groups: GroupMatrices, tau: float,
                 activation: str) -> Tensor:
    """(C, N) ``d L / d z_s`` from (N + C*G,) ``d L / d rho``:
    ``d L / d p_s = sum_k g_k w_k (inv_k y_k - coef_k x_k)`` over the row and the
    group's column of each entry (centred ``x``, ``y``)."""
    num_classes, num_rows = block.probs.shape[1:]
    g_inv, g_coef = grad_rho * block.inv, grad_rho * block.coef
    column = torch.cat([g_inv[num_rows:].view(num_classes, -1),
                        g_coef[num_rows:].view(num_classes, -1)]) @ groups.weights
    (x_r, y_r), (x_c, y_c) = block.centred
    grad = y_c * column[:num_classes]
    grad.addcmul_(x_c, column[num_classes:], value=-1)
    grad.addcmul_(y_r, g_inv[:num_rows]).addcmul_(x_r, g_coef[:num_rows], value=-1)
    # Through the activation: the aten ops autograd itself uses for softmax and sigmoid.
    if activation == 'softmax':
        grad = torch.ops.aten._softmax_backward_data(grad, block.probs[0], 0, grad.dtype)
    else:
        grad = torch.ops.aten.sigmoid_backward(grad, block.probs[0])
    return grad if tau == 1.0 else grad.div_(tau)


def _teacher_max(block: _Block, weight: Optional[Tensor],
                 group_sizes: Tuple[int, ...]) -> Tensor:
    """(G, C) teacher's largest probability per group over the rows of positive weight."""
    kept = block.probs[1] if weight is None else block.probs[1] * (weight > 0)
    teacher_max = kept.new_zeros(len(group_sizes), kept.shape[0])
    start = 0
    for group, size in enumerate(group_sizes):
        if size:
            teacher_max[group] = kept[:, start:start + size].amax(1)
        start += size
    return teacher_max


class SmallDISTRelations(torch.autograd.Function):
    """Row and (weighted) per-group column Pearson correlations of activation(z / tau)
    for one block: the inputs and outputs of ``dist_loss._DISTRelations``."""

    @staticmethod
    def forward(ctx, z_s: Tensor, z_t: Tensor, weight: Optional[Tensor], tau: float,
                activation: str, eps: float, with_teacher_max: bool,
                group_sizes: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Tensor]:
        num_rows, num_classes = z_s.shape
        groups = group_matrices(group_sizes, weight, compute_dtype(z_s), z_s.device)
        block = _block_correlations(z_s, z_t, groups, tau, activation, eps)
        teacher_max = (_teacher_max(block, weight, group_sizes) if with_teacher_max else
                       block.rho.new_zeros(len(group_sizes), num_classes))
        ctx.block, ctx.groups = block, groups
        ctx.tau, ctx.activation, ctx.logit_dtype = tau, activation, z_s.dtype
        ctx.mark_non_differentiable(teacher_max)
        rho_cols = block.rho[num_rows:].view(num_classes, -1).t()
        return block.rho[:num_rows], rho_cols, teacher_max

    @staticmethod
    def backward(ctx, grad_r: Tensor, grad_c: Tensor, _grad_max: Optional[Tensor]):
        grad_rho = torch.cat([grad_r, grad_c.t().reshape(-1)])
        grad = _logits_grad(ctx.block, grad_rho, ctx.groups, ctx.tau, ctx.activation)
        return (grad.t().to(ctx.logit_dtype), ) + (None, ) * 7


@functools.lru_cache(maxsize=32)
def _term_scales(num_rows: int, num_classes: int, num_groups: int, inter_loss_weight: float,
                 intra_loss_weight: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(N + C*G,) ``inter_loss_weight`` for rows, ``intra_loss_weight / C`` for columns."""
    return torch.cat([torch.full((num_rows, ), inter_loss_weight, dtype=dtype, device=device),
                      torch.full((num_classes * num_groups, ), intra_loss_weight / num_classes,
                                 dtype=dtype, device=device)])


@functools.lru_cache(maxsize=32)
def _extended_membership(sizes: Tuple[int, ...], num_classes: int, dtype: torch.dtype,
                         device: torch.device) -> Tensor:
    """(G, N + C*G) 1 where a correlation (rows, then columns laid out (C, G)) belongs to
    group g: the per-group sums of the loss terms are one product."""
    columns = torch.eye(len(sizes), dtype=dtype, device=device).repeat(1, num_classes)
    return torch.cat([_unweighted_groups(sizes, dtype, device).membership, columns], 1)


def _loss_weights(groups: GroupMatrices, num_classes: int, teacher_max: Optional[Tensor],
                  inter_loss_weight: float, intra_loss_weight: float,
                  threshold: Optional[float]) -> Tensor:
    """(N + C*G,) weights ``a`` of ``loss = sum_k a_k (1 - rho_k)`` (:func:`relation_weights`),
    laid out as ``_Block.rho``."""
    if threshold is None:  # class shares has_g / C: (C, G) = has repeated C times
        shares = torch.cat([groups.row_share, groups.has_rows.repeat(num_classes)])
        return shares.mul_(_term_scales(groups.row_share.shape[0], num_classes,
                                        groups.has_rows.shape[0], inter_loss_weight,
                                        intra_loss_weight, shares.dtype, shares.device))
    row_weights, class_weights = relation_weights(groups.row_share, groups.has_rows,
                                                  num_classes, teacher_max, inter_loss_weight,
                                                  intra_loss_weight, threshold)
    return torch.cat([row_weights, class_weights.t().reshape(-1)])


class SmallDISTLoss(torch.autograd.Function):
    """The DIST loss (before ``tau^2``) of one block as a single autograd node.

    ``loss_weights`` = ``(inter_loss_weight, intra_loss_weight, intra_class_threshold)``.
    The loss ``sum_k a_k (1 - rho_k)`` is a fixed weighting of the correlations
    (:func:`relation_weights`), so its gradient is known in forward and backward only
    scales it. With ``per_group`` the output is the (G,) loss of each group instead of
    their sum; each row's gradient then scales with its group's.
    """

    @staticmethod
    def forward(ctx, z_s: Tensor, z_t: Tensor, weight: Optional[Tensor], tau: float,
                activation: str, eps: float, group_sizes: Tuple[int, ...],
                loss_weights: tuple, per_group: bool = False) -> Tensor:
        inter_loss_weight, intra_loss_weight, threshold = loss_weights
        num_classes = z_s.shape[1]
        groups = group_matrices(group_sizes, weight, compute_dtype(z_s), z_s.device)
        block = _block_correlations(z_s, z_t, groups, tau, activation, eps)
        teacher_max = None if threshold is None else _teacher_max(block, weight, group_sizes)
        weights = _loss_weights(groups, num_classes, teacher_max, inter_loss_weight,
                                intra_loss_weight, threshold)  # (N + C*G,)
        if per_group:
            loss = _extended_membership(group_sizes, num_classes, weights.dtype,
                                        weights.device) @ (weights * (1 - block.rho))
        else:
            loss = weights @ (1 - block.rho)
        ctx.grad = (_logits_grad(block, weights.neg_(), groups, tau, activation)
                    if ctx.needs_input_grad[0] else None)
        ctx.membership = groups.membership if per_group else None
        ctx.logit_dtype = z_s.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        if ctx.membership is None:
            grad = ctx.grad * grad_loss
        else:  # (G,) gradient: each row's entries scaled by that of its group
            grad = ctx.grad * (grad_loss @ ctx.membership)
        return (grad.t().to(ctx.logit_dtype), ) + (None, ) * 8
