# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST: inter-class and intra-class Pearson relation between predicted distributions.

Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.
The math, shapes and deviations from the official code are in ``docs/losses.md``.
"""
import functools
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmdist.registry import MODELS
from .dist_small import SmallDISTLoss, SmallDISTRelations
from .dist_terms import correlation, relation_loss, relation_weights
from .kd_loss import kd_loss_per_row
from .utils import (autocast_disabled, check_activation, check_groups, check_logits,
                    check_non_negative, check_positive, compute_dtype)


#: Elements per row block and logit matrix: a block's (2, C, rows) float32 student and
#: teacher values are about 2 MiB, so the few block temporaries of a step stay in cache
#: instead of going through main memory.
BLOCK_ELEMENTS = 1 << 18

#: The rows of one group inside a block: ``(local start, local end, group)``.
Segment = Tuple[int, int, int]


def _stacked_probs(z_s: Tensor, z_t: Tensor, start: int, end: int, activation: str,
                   tau: float, dtype: torch.dtype) -> Tensor:
    """(2, C, rows) ``activation(z / tau)`` of rows ``start:end`` of the (N, C) student
    and teacher logits, class-major and stacked (student first).

    Class-major, every reduction and broadcast below runs along rows (long and
    contiguous) instead of along the C classes, which for few classes would be the
    innermost loop; stacked, each step is one operation for both matrices. The
    transposition is the copy that also converts to the compute dtype; everything after
    is in place.
    """
    probs = z_s.new_empty((2, z_s.shape[1], end - start), dtype=dtype)
    # Written through the transposed view, the copy reads the logits in memory order
    # (about 1.5x faster than reading them transposed).
    probs[0].t().copy_(z_s[start:end])
    probs[1].t().copy_(z_t[start:end])
    if tau != 1.0:
        probs.div_(tau)
    if activation == 'softmax':
        probs.sub_(probs.amax(1, keepdim=True)).exp_()
        probs.div_(probs.sum(1, keepdim=True))
    else:
        probs.sigmoid_()
    return probs


class _RowGroups:
    """Groups of consecutive rows (sizes adding up to N) and the row blocks that visit
    them: at most :data:`BLOCK_ELEMENTS` elements each, crossing group boundaries, so
    that many small groups (the FPN levels of a small image) share one block. A block is
    ``(start, end, segments)``: its rows and the :data:`Segment` of each group in it.
    """

    def __init__(self, sizes: List[int], num_classes: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.sizes = sizes
        self.num_groups = len(sizes)
        #: (G,) group sizes and (N,) ``1 / n_g`` of each row's group, in ``dtype``.
        self.counts = torch.tensor(sizes, dtype=dtype, device=device)
        #: (N,) group of each row; (G,) 1/0: whether the group has rows.
        self.row_group = torch.repeat_interleave(
            torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device),
            output_size=sum(sizes))
        self.row_shares = (1 / self.counts.clamp_min(1))[self.row_group]
        self.has_rows = (self.counts > 0).to(dtype)
        step = max(1, BLOCK_ELEMENTS // max(num_classes, 1))
        bounds = [0]
        for size in sizes:
            bounds.append(bounds[-1] + size)
        self.blocks: List[Tuple[int, int, List[Segment]]] = []
        for start in range(0, bounds[-1], step):
            end = min(start + step, bounds[-1])
            self.blocks.append((start, end, [
                (max(lo, start) - start, min(hi, end) - start, group)
                for group, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
                if lo < hi and lo < end and hi > start
            ]))

    def group_sums(self, values: Tensor) -> Tensor:
        """(G,) sums of (N,) ``values`` over each group's rows."""
        return values.new_zeros(self.num_groups).index_add_(0, self.row_group, values)

    def column_means(self, probs: List[Tensor], weight: Optional[Tensor]) -> Tensor:
        """(G, 2, C) (weighted) means over each group's rows of the stacked blocks."""
        num_classes = probs[0].shape[1]
        totals = probs[0].new_zeros(self.num_groups, 2, num_classes)
        for (start, end, segments), block in zip(self.blocks, probs):
            flat = block.view(2 * num_classes, end - start)
            for lo, hi, group in segments:
                if weight is None:
                    totals[group] += flat[:, lo:hi].sum(1).view(2, num_classes)
                else:  # a matrix-vector product: no weighted copy
                    totals[group] += (flat[:, lo:hi] @ weight[start + lo:start + hi]).view(
                        2, num_classes)
        counts = self.counts if weight is None else self.group_sums(weight)
        return totals / counts.clamp_min(torch.finfo(totals.dtype).tiny)[:, None, None]


@functools.lru_cache(maxsize=32)
def _row_groups(sizes: Tuple[int, ...], num_classes: int, dtype: torch.dtype,
                device: torch.device, block_elements: int) -> _RowGroups:
    """:class:`_RowGroups`, built once per shape (training repeats the same shapes).
    ``block_elements`` is :data:`BLOCK_ELEMENTS` at call time (part of the key)."""
    return _RowGroups(list(sizes), num_classes, dtype, device)


class _DISTRelations(torch.autograd.Function):
    """Row and (weighted) column Pearson correlations of activation(z / tau) per group
    of consecutive rows, and the teacher's largest probability per group and class over
    the rows of positive weight.

    The probabilities are computed once per block of rows (:data:`BLOCK_ELEMENTS`),
    student and teacher stacked class-major (2, C, rows), and kept for backward; every
    other step runs block by block, so its temporaries stay in cache and never reach
    full size. Forward makes two block passes (column means first, so every sum is over
    exactly centred values) and keeps only vectors: the row moments are sums over the
    classes of centred products, the column moments of each class one 2x2 Gram matrix
    ``[x_c, y_c] W [x_c, y_c]^T`` (a batched matrix product over the classes, without
    product temporaries). Backward writes each block of ``d L / d z`` directly:
    ``d rho / d p = w * (y_c * inv - coef * x_c)`` is already centred (no projection
    pass), and with the saved means it is an affine function of the raw probabilities
    per row and column. Several groups in one call (e.g. FPN levels) cost one call's
    fixed overhead.
    """

    @staticmethod
    def forward(ctx, z_s: Tensor, z_t: Tensor, weight: Optional[Tensor], tau: float,
                activation: str, eps: float, with_teacher_max: bool,
                group_sizes: List[int]) -> Tuple[Tensor, Tensor, Tensor]:
        num_rows, num_classes = z_s.shape
        dtype = compute_dtype(z_s)
        groups = _row_groups(tuple(group_sizes), num_classes, dtype, z_s.device,
                             BLOCK_ELEMENTS)
        probs = [_stacked_probs(z_s, z_t, start, end, activation, tau, dtype)
                 for start, end, _ in groups.blocks]  # (2, C, rows) each
        means = groups.column_means(probs, weight)  # (G, 2, C)
        # A softmax row sums to one: its mean is 1/C, no reduction needed.
        softmax = activation == 'softmax'
        row_means = None if softmax else probs[0].new_empty(2, 1, num_rows)
        row_moments = probs[0].new_empty(3, num_rows)  # (xx, xy, yy) per row
        gram = probs[0].new_zeros(groups.num_groups, num_classes, 2, 2)
        teacher_max = probs[0].new_zeros(groups.num_groups, num_classes)
        for (start, end, segments), block in zip(groups.blocks, probs):
            w = None if weight is None else weight[start:end]
            if with_teacher_max:
                kept = block[1] if w is None else block[1] * (w > 0)
                for lo, hi, group in segments:
                    torch.maximum(teacher_max[group], kept[:, lo:hi].amax(1),
                                  out=teacher_max[group])
            # Row moments of row-centred values.
            if softmax:
                centred = block - 1.0 / num_classes
            else:
                row_mean = torch.mean(block, 1, keepdim=True, out=row_means[:, :, start:end])
                centred = block - row_mean
            torch.sum(centred[0] * centred[1], 0, out=row_moments[1, start:end])
            torch.sum(centred.square_(), 1, out=row_moments[0::2, start:end])
            # Column moments of column-centred values (weighted), per group: (C, 2, 2).
            for lo, hi, group in segments:
                torch.sub(block[:, :, lo:hi], means[group, :, :, None],
                          out=centred[:, :, lo:hi])
            weighted = centred if w is None else centred * w
            for lo, hi, group in segments:
                gram[group] += torch.bmm(centred[:, :, lo:hi].transpose(0, 1),
                                         weighted[:, :, lo:hi].permute(1, 2, 0))
        rho_r, inv_r, coef_r = correlation(row_moments[1], row_moments[0], row_moments[2],
                                           eps)
        rho_c, inv_c, coef_c = correlation(gram[..., 0, 1], gram[..., 0, 0], gram[..., 1, 1],
                                           eps)
        # Saved through autograd, so that the blocks are freed right after backward.
        ctx.save_for_backward(weight, inv_r, coef_r, means, inv_c, coef_c, row_means, *probs)
        ctx.groups = groups
        ctx.tau, ctx.activation, ctx.logit_dtype = tau, activation, z_s.dtype
        ctx.mark_non_differentiable(teacher_max)
        return rho_r, rho_c, teacher_max

    @staticmethod
    def backward(ctx, grad_r: Tensor, grad_c: Tensor, _grad_max: Optional[Tensor]):
        weight, inv_r, coef_r, means, inv_c, coef_c, row_means, *probs = ctx.saved_tensors
        # d L / d p = g_r (inv_r (y - ybar_r) - coef_r (x - xbar_r))
        #           + w g_c (inv_c (y - ybar_c) - coef_c (x - xbar_c))
        #           = y * (a_r + w a_c) - x * (b_r + w b_c) + (k_r + w k_c)
        # with the column coefficients (a_c, b_c, k_c) of the row's group.
        a_r, b_r = grad_r * inv_r, grad_r * coef_r  # (N,)
        a_c, b_c = grad_c * inv_c, grad_c * coef_c  # (G, C)
        num_classes = a_c.shape[1]
        # The softmax's Jacobian maps a constant per row to zero: k_r drops out there.
        k_r = (None if ctx.activation == 'softmax' else
               b_r * row_means[0, 0] - a_r * row_means[1, 0])
        k_c = b_c * means[:, 0] - a_c * means[:, 1]
        neg_b_r, neg_b_c = -b_r, -b_c
        grad_z = a_r.new_empty(a_r.shape[0], num_classes)  # (N, C) like the logits
        for (start, end, segments), block in zip(ctx.groups.blocks, probs):
            grad = block.new_empty(block.shape[1:])  # (C, rows)
            for lo, hi, group in segments:
                x, y = block[0, :, lo:hi], block[1, :, lo:hi]
                rows = slice(start + lo, start + hi)
                col_a, col_neg_b, col_k = (coefs[group, :, None] for coefs in (a_c, neg_b_c, k_c))
                out = grad[:, lo:hi]
                torch.addcmul(col_k, y, col_a, out=out).addcmul_(x, col_neg_b)
                if weight is not None:  # the column part scales with the row weights
                    out.mul_(weight[rows])
                if k_r is not None:
                    out.add_(k_r[rows])
                out.addcmul_(y, a_r[rows]).addcmul_(x, neg_b_r[rows])
            # Through the activation: the aten ops autograd itself uses.
            if ctx.activation == 'softmax':
                grad = torch.ops.aten._softmax_backward_data(grad, block[0], 0, grad.dtype)
            else:
                grad = torch.ops.aten.sigmoid_backward(grad, block[0])
            if ctx.tau != 1.0:
                grad.div_(ctx.tau)
            # Through the transposed view: the copy writes in memory order (faster).
            grad_z[start:end].t().copy_(grad)
        return grad_z.to(ctx.logit_dtype), None, None, None, None, None, None, None


def _fits_one_block(logits: Tensor) -> bool:
    """Whether (N, C) ``logits`` are one block: then the few-operations core of
    ``dist_small`` runs instead of the blockwise one."""
    num_rows, num_classes = logits.shape
    return 0 < num_rows <= max(1, BLOCK_ELEMENTS // max(num_classes, 1))


def dist_relations(student_logits: Tensor, teacher_logits: Tensor,
                   weight: Optional[Tensor] = None, tau: float = 1.0,
                   activation: str = 'softmax', eps: float = 1e-8,
                   with_teacher_max: bool = True,
                   groups: Optional[Sequence[int]] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Pearson correlations of rows and (weighted) columns of ``activation(z / tau)``.

    ``rho(x, y) = cov(x, y) / max(sqrt(var(x) * var(y)), eps)``; a constant row or column
    has ``rho = 0`` with finite gradients. Gradients flow to the student logits only.

    Args:
        student_logits: (N, C) student logits.
        teacher_logits: (N, C) teacher logits (no gradient).
        weight: optional (N,) non-negative row weights (of the compute dtype); the column
            correlations are weighted Pearson correlations (0/1 weights = computing on the
            kept rows).
        tau: temperature.
        activation: ``'softmax'`` over C, or ``'sigmoid'`` per entry.
        eps: lower bound of the normaliser.
        with_teacher_max: compute ``teacher_max`` (zeros otherwise).
        groups: optional sizes (G of them, adding up to N) of groups of consecutive rows
            whose columns are correlated separately, e.g. the FPN levels of a dense head:
            the same numbers as G calls on the groups, in one call.

    Returns:
        ``(rho_rows, rho_cols, teacher_max)`` of shapes (N,), (C,), (C,) — (N,), (G, C),
        (G, C) with ``groups`` — float32 (float64 for float64 logits);
        ``teacher_max[..., c]`` is the teacher's largest probability of class c over the
        rows of positive weight (of the group; no gradient).
    """
    group_sizes = check_groups(groups, student_logits.shape[0])
    if _fits_one_block(student_logits):
        core, group_sizes = SmallDISTRelations, tuple(group_sizes)
    else:
        core = _DISTRelations
    rho_rows, rho_cols, teacher_max = core.apply(student_logits, teacher_logits.detach(),
                                                 weight, tau, activation, eps,
                                                 with_teacher_max, group_sizes)
    if groups is None:
        return rho_rows, rho_cols[0], teacher_max[0]
    return rho_rows, rho_cols, teacher_max


def _row_shares(weight: Optional[Tensor], groups: _RowGroups) -> Tuple[Tensor, Tensor]:
    """(N,) ``w_i / W_g(i)`` (each row's share of its group's weight ``W_g``; ``1 / n_g``
    without weights) and (G,) 1/0: whether the group has weight."""
    if weight is None:
        return groups.row_shares, groups.has_rows
    tiny = torch.finfo(weight.dtype).tiny
    if groups.num_groups == 1:
        totals = weight.sum()[None]
        return weight / totals.clamp_min(tiny), (totals > 0).to(weight.dtype)
    totals = groups.group_sums(weight)
    shares = (1 / totals.clamp_min(tiny))[groups.row_group]
    return weight * shares, (totals > 0).to(weight.dtype)


def dist_loss(student_logits: Tensor,
              teacher_logits: Tensor,
              weight: Optional[Tensor] = None,
              inter_loss_weight: float = 1.0,
              intra_loss_weight: float = 1.0,
              tau: float = 1.0,
              activation: str = 'softmax',
              eps: float = 1e-8,
              kl_weight: float = 0.0,
              intra_class_threshold: Optional[float] = None,
              groups: Optional[Sequence[int]] = None,
              reduce_groups: bool = True) -> Tensor:
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
        kl_weight: lambda of the optional KL anchor ``+ lambda * tau^2 * KL(p_t || p_s)``
            (weighted mean over rows), which transfers the teacher's confidence level that
            Pearson correlation ignores.
        intra_class_threshold: if set, the intra-class term averages only over classes the
            teacher gives at least this probability somewhere in the (valid) batch;
            classes absent from the batch are left out instead of fitting noise.
        groups: optional sizes of groups of consecutive rows (adding up to N), e.g. the
            FPN levels of a dense head: the loss is then the **sum** over groups of the
            loss of each group (the same as one call per group, computed in one pass).
        reduce_groups: if False, return the (G,) loss of each group instead of their sum
            (e.g. several heads' logits in one call, each with its own loss weight).

    Returns:
        Scalar float32 loss ((G,) with ``reduce_groups=False``). A group with no row of
        positive weight adds a zero that still belongs to the autograd graph.
    """
    check_logits(student_logits, teacher_logits, weight)
    group_sizes = check_groups(groups, student_logits.shape[0])
    dtype = compute_dtype(student_logits)
    with autocast_disabled(student_logits):
        if weight is not None:
            weight = weight.detach().to(dtype)
        row_groups = functools.partial(_row_groups, tuple(group_sizes),
                                       student_logits.shape[1], dtype, student_logits.device)
        if _fits_one_block(student_logits):  # one autograd node
            loss = SmallDISTLoss.apply(student_logits, teacher_logits.detach(), weight, tau,
                                       activation, eps, tuple(group_sizes),
                                       (inter_loss_weight, intra_loss_weight,
                                        intra_class_threshold), not reduce_groups)
        else:
            rho_rows, rho_cols, teacher_max = _DISTRelations.apply(  # (N,), (G, C), (G, C)
                student_logits, teacher_logits.detach(), weight, tau, activation, eps,
                intra_class_threshold is not None, group_sizes)
            groups = row_groups(BLOCK_ELEMENTS)
            row_share, has_rows = _row_shares(weight, groups)  # (N,), (G,)
            row_weights, class_weights = relation_weights(
                row_share, has_rows, student_logits.shape[1], teacher_max, inter_loss_weight,
                intra_loss_weight, intra_class_threshold)
            loss = relation_loss(rho_rows, rho_cols, row_weights, class_weights,
                                 group_sums=None if reduce_groups else groups.group_sums)
        if kl_weight > 0:
            kl = kd_loss_per_row(student_logits, teacher_logits, tau, activation) / tau**2
            groups = row_groups(BLOCK_ELEMENTS)
            kl = _row_shares(weight, groups)[0] * kl.to(dtype)
            loss = loss + kl_weight * (kl.sum() if reduce_groups else groups.group_sums(kl))
        return loss if tau == 1.0 else tau**2 * loss


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
        kl_weight: weight lambda of an optional KL anchor (DIST + lambda * KD); 0 = off.
        intra_class_threshold: leave classes the teacher never gives this probability in
            the batch out of the intra-class term; None = all classes (the paper).

    Unlike mmdet's element-wise losses, DIST has no ``avg_factor`` or ``reduction``:
    both terms are means of correlations, normalised by construction.
    """

    def __init__(self,
                 inter_loss_weight: float = 1.0,
                 intra_loss_weight: float = 1.0,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 activation: str = 'softmax',
                 eps: float = 1e-8,
                 kl_weight: float = 0.0,
                 intra_class_threshold: Optional[float] = None) -> None:
        super().__init__()
        self.inter_loss_weight = check_non_negative('inter_loss_weight', inter_loss_weight)
        self.intra_loss_weight = check_non_negative('intra_loss_weight', intra_loss_weight)
        self.tau = check_positive('tau', tau)
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self.activation = check_activation(activation)
        self.eps = check_positive('eps', eps)
        self.kl_weight = check_non_negative('kl_weight', kl_weight)
        if intra_class_threshold is not None and not 0 <= intra_class_threshold <= 1:
            raise ValueError('intra_class_threshold must be None or in [0, 1], got '
                             f'{intra_class_threshold!r}')
        self.intra_class_threshold = intra_class_threshold

    def loss_settings(self) -> dict:
        """The keyword arguments of :func:`dist_loss` this module passes (all its
        settings except ``loss_weight``)."""
        return dict(inter_loss_weight=self.inter_loss_weight,
                    intra_loss_weight=self.intra_loss_weight, tau=self.tau,
                    activation=self.activation, eps=self.eps, kl_weight=self.kl_weight,
                    intra_class_threshold=self.intra_class_threshold)

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                weight: Optional[Tensor] = None,
                groups: Optional[Sequence[int]] = None,
                reduce_groups: bool = True) -> Tensor:
        """Compute the loss.

        Args:
            student_logits: (N, C) logits.
            teacher_logits: (N, C) logits (detached).
            weight: optional (N,) row weights, 0 = row left out.
            groups: optional sizes of consecutive row groups (e.g. FPN levels): the sum
                over groups of the loss of each group, in one pass.
            reduce_groups: if False, return the (G,) loss of each group instead.

        Returns:
            Scalar float32 loss ((G,) with ``reduce_groups=False``).
        """
        loss = dist_loss(student_logits, teacher_logits, weight=weight, groups=groups,
                         reduce_groups=reduce_groups, **self.loss_settings())
        return loss if self.loss_weight == 1.0 else self.loss_weight * loss

    def extra_repr(self) -> str:
        return (f'inter_loss_weight={self.inter_loss_weight}, '
                f'intra_loss_weight={self.intra_loss_weight}, tau={self.tau}, '
                f'loss_weight={self.loss_weight}, activation={self.activation!r}, '
                f'kl_weight={self.kl_weight}, '
                f'intra_class_threshold={self.intra_class_threshold}')
