# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST: inter-class and intra-class Pearson relation between predicted distributions.

Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.
The math, shapes and deviations from the official code are in ``docs/losses.md``.
"""
import functools
import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmdist.registry import MODELS
from .dist_small import SmallDISTLoss, SmallDISTRelations
from .dist_terms import correlation, relation_loss, relation_weights
from .kd_loss import kd_loss_per_row
from .utils import (autocast_disabled, check_activation, check_groups, check_logits,
                    check_non_negative, check_positive, compute_dtype)


#: Elements per row block and logit matrix on the CPU: a block's (2, C, rows) float32
#: student and teacher values are 512 KiB, so a step's block and its temporaries stay in
#: a 2 MiB L2 cache instead of going through main memory. Matrices up to this size take
#: the single-block core of ``dist_small`` (measured: faster than the blockwise core up
#: to about this size, slower above it).
BLOCK_ELEMENTS = 1 << 16

#: The same on other devices (GPUs), where every operation is a kernel launch that costs
#: microseconds whatever its size and no small cache needs to be kept: 2^24 logits
#: (64 MiB of float32), so that a COCO-scale RetinaNet matrix is two blocks and a
#: Cityscapes-scale one goes to the single-block core. Not measured (no GPU here).
DEVICE_BLOCK_ELEMENTS = 1 << 24


def block_elements(device: torch.device) -> int:
    """Elements per row block (and the single-block limit) for tensors on ``device``."""
    return BLOCK_ELEMENTS if device.type == 'cpu' else DEVICE_BLOCK_ELEMENTS


#: The rows of one group inside a block: ``(local start, local end, group, index)``, with
#: ``index`` the segment's position among all segments (blocks in order).
Segment = Tuple[int, int, int, int]


def _leading(buffer: Tensor, *shape: int) -> Tensor:
    """A contiguous ``shape`` view of the first elements of the 1-D ``buffer`` (a
    scratch buffer of a full block, used by a shorter one). Contiguous matters: torch
    2.14's ``_softmax_backward_data.out`` writes wrong values into a strided output."""
    return buffer[:math.prod(shape)].view(shape)


def _stacked_probs(z_s: Tensor, z_t: Tensor, activation: str, tau: float,
                   out: Tensor) -> Tensor:
    """``activation(z / tau)`` of (rows, C) student and teacher logits, written
    class-major and stacked (student first) into ``out``: 2*C*rows elements of the
    compute dtype, returned as (2, C, rows).

    Class-major, every reduction and broadcast below runs along rows (long and
    contiguous) instead of along the C classes, which for few classes would be the
    innermost loop; stacked, each step is one operation for both matrices. The
    transposition is the copy that also converts to the compute dtype; everything after
    is in place.
    """
    probs = out.view(2, z_s.shape[1], z_s.shape[0])
    # Written through the transposed view, the copy reads the logits in memory order
    # (about 1.5x faster than reading them transposed).
    student, teacher = probs.transpose(1, 2)
    student.copy_(z_s)
    teacher.copy_(z_t)
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
    them: at most ``block_elements`` elements each, crossing group boundaries, so that
    many small groups (the FPN levels of a small image) share one block. Each block has
    a :data:`Segment` per group in it (``block_segments``); per-block views of row
    tensors come from :meth:`split`, and per-segment results are summed per group at the
    end (:meth:`per_group`).
    """

    def __init__(self, sizes: List[int], num_classes: int, dtype: torch.dtype,
                 device: torch.device, block_elements: int) -> None:
        self.num_groups = len(sizes)
        #: (G,) group sizes, in ``dtype``.
        self.counts = torch.tensor(sizes, dtype=dtype, device=device)
        #: (N,) group of each row.
        self.row_group = torch.repeat_interleave(
            torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device),
            output_size=sum(sizes))
        #: (N,) ``1 / n_g`` of each row's group; (G,) 1/0: whether the group has rows.
        self.row_shares = (1 / self.counts.clamp_min(1))[self.row_group]
        self.has_rows = (self.counts > 0).to(dtype)
        #: Rows per block (the last block may have fewer).
        self.block_rows = step = max(1, block_elements // max(num_classes, 1))
        bounds = [0]
        for size in sizes:
            bounds.append(bounds[-1] + size)
        self.block_segments: List[List[Segment]] = []
        segment_groups: List[int] = []
        for start in range(0, bounds[-1], step):
            end = min(start + step, bounds[-1])
            segments = []
            for group, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                if lo < hi and lo < end and hi > start:
                    segments.append((max(lo, start) - start, min(hi, end) - start, group,
                                     len(segment_groups)))
                    segment_groups.append(group)
            self.block_segments.append(segments)
        self.num_segments = len(segment_groups)
        #: (S,) group of each segment.
        self.segment_groups = torch.tensor(segment_groups, dtype=torch.long, device=device)

    def split(self, values: Tensor, dim: int = 0) -> Tuple[Tensor, ...]:
        """Views of ``values`` (N rows along ``dim``), one per block."""
        return values.split(self.block_rows, dim)

    def group_sums(self, values: Tensor) -> Tensor:
        """(G,) sums of (N,) ``values`` over each group's rows."""
        return values.new_zeros(self.num_groups).index_add_(0, self.row_group, values)

    def per_group(self, values: Tensor) -> Tensor:
        """(G, ...) sums over each group's segments of (S, ...) per-segment ``values``."""
        return values.new_zeros((self.num_groups, *values.shape[1:])).index_add_(
            0, self.segment_groups, values)


@functools.lru_cache(maxsize=32)
def _row_groups(sizes: Tuple[int, ...], num_classes: int, dtype: torch.dtype,
                device: torch.device, block_elements: int) -> _RowGroups:
    """:class:`_RowGroups`, built once per shape (training repeats the same shapes)."""
    return _RowGroups(list(sizes), num_classes, dtype, device, block_elements)


class _DISTRelations(torch.autograd.Function):
    """Row and (weighted) column Pearson correlations of activation(z / tau) per group
    of consecutive rows, and the teacher's largest probability per group and class over
    the rows of positive weight.

    The probabilities are computed once per block of rows (:func:`block_elements`),
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
                             block_elements(z_s.device))
        # Per-block views, made once: each Python-level operation costs microseconds,
        # which add up over the blocks.
        num_blocks = len(groups.block_segments)
        weights = (None, ) * num_blocks if weight is None else groups.split(weight)
        # Pass 1: the probabilities, and each segment's (weighted) column sums while its
        # block is still in cache.
        # The blocks are consecutive parts of one buffer, and the block temporaries below
        # reuse buffers made once per call: fewer allocations, memory read in order
        # (together about 10 % faster at Cityscapes scale than one allocation each).
        storage = z_s.new_empty(2 * num_classes * num_rows, dtype=dtype).split(
            2 * num_classes * groups.block_rows)
        probs = []  # (2, C, rows) per block
        segment_sums = z_s.new_empty((groups.num_segments, 2 * num_classes), dtype=dtype)
        for segments, logits_s, logits_t, w, out in zip(
                groups.block_segments, groups.split(z_s), groups.split(z_t), weights, storage):
            block = _stacked_probs(logits_s, logits_t, activation, tau, out)
            probs.append(block)
            flat = block.view(2 * num_classes, -1)
            for lo, hi, _, index in segments:
                if w is None:
                    torch.sum(flat[:, lo:hi], 1, out=segment_sums[index])
                else:  # a matrix-vector product: no weighted copy
                    torch.mv(flat[:, lo:hi], w[lo:hi], out=segment_sums[index])
        counts = groups.counts if weight is None else groups.group_sums(weight)
        means = groups.per_group(segment_sums).view(-1, 2, num_classes) / counts.clamp_min(
            torch.finfo(dtype).tiny)[:, None, None]  # (G, 2, C)
        centres = means[..., None].unbind(0)  # (2, C, 1) per group
        # Pass 2: moments of exactly centred values.
        # A softmax row sums to one: its mean is 1/C, no reduction needed.
        softmax = activation == 'softmax'
        row_means = None if softmax else probs[0].new_empty(2, 1, num_rows)
        row_moments = probs[0].new_empty(3, num_rows)  # (xx, xy, yy) per row
        segment_grams = probs[0].new_empty(groups.num_segments, num_classes, 2, 2)
        teacher_max = probs[0].new_zeros(groups.num_groups, num_classes)
        centred_buffer = probs[0].new_empty(2 * num_classes * groups.block_rows)
        product_buffer = probs[0].new_empty(num_classes * groups.block_rows)
        weighted_buffer = None if weight is None else torch.empty_like(centred_buffer)
        for segments, block, w, products, squares, row_mean in zip(
                groups.block_segments, probs, weights, groups.split(row_moments[1]),
                groups.split(row_moments[0::2], 1),
                (None, ) * num_blocks if softmax else groups.split(row_means, 2)):
            if with_teacher_max:
                kept = block[1] if w is None else block[1] * (w > 0)
                for lo, hi, group, _ in segments:
                    torch.maximum(teacher_max[group], kept[:, lo:hi].amax(1),
                                  out=teacher_max[group])
            # Row moments of row-centred values.
            rows = block.shape[2]
            centred = _leading(centred_buffer, 2, num_classes, rows)
            if softmax:
                torch.sub(block, 1.0 / num_classes, out=centred)
            else:
                torch.sub(block, torch.mean(block, 1, keepdim=True, out=row_mean), out=centred)
            x, y = centred
            torch.sum(torch.mul(x, y, out=_leading(product_buffer, num_classes, rows)), 0,
                      out=products)
            torch.sum(centred.square_(), 1, out=squares)
            # Column moments of column-centred values (weighted), per segment: (C, 2, 2).
            for lo, hi, group, _ in segments:
                torch.sub(block[:, :, lo:hi], centres[group], out=centred[:, :, lo:hi])
            weighted = (centred if w is None else
                        torch.mul(centred, w, out=_leading(weighted_buffer, 2, num_classes,
                                                           rows)))
            for lo, hi, _, index in segments:
                torch.bmm(centred[:, :, lo:hi].transpose(0, 1),
                          weighted[:, :, lo:hi].permute(1, 2, 0), out=segment_grams[index])
        gram = groups.per_group(segment_grams)  # (G, C, 2, 2)
        rho_r, inv_r, coef_r = correlation(row_moments[1], row_moments[0], row_moments[2],
                                           eps)
        rho_c, inv_c, coef_c = correlation(gram[..., 0, 1], gram[..., 0, 0], gram[..., 1, 1],
                                           eps)
        # Saved through autograd, so that the blocks are freed right after backward.
        ctx.save_for_backward(weight, inv_r, coef_r, means, inv_c, coef_c, row_means, *probs)
        ctx.groups = groups
        ctx.tau, ctx.activation, ctx.logit_dtype = tau, activation, z_s.dtype
        # (N, C) views of class-major memory (what the distillers pass) get their gradient
        # in the same layout: copied block by block without transposing.
        ctx.class_major = num_classes > 1 and z_s.t().is_contiguous()
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
        groups = ctx.groups
        # (C, 1) per group: per class, broadcast along rows.
        col_a, col_neg_b, col_k = (coefs[..., None].unbind(0) for coefs in (a_c, -b_c, k_c))
        num_blocks = len(groups.block_segments)
        weights = (None, ) * num_blocks if weight is None else groups.split(weight)
        row_k = (None, ) * num_blocks if k_r is None else groups.split(k_r)
        if ctx.class_major:  # (N, C) view of (C, N) memory, like the logits
            grad_z = a_r.new_empty(num_classes, a_r.shape[0]).t()
        else:
            grad_z = a_r.new_empty(a_r.shape[0], num_classes)
        # Reused by every block: d L / d p, then d L / d (z / tau).
        buffers = a_r.new_empty(2, num_classes * groups.block_rows)
        for segments, block, w, a, neg_b, k, grad_rows in zip(
                groups.block_segments, probs, weights, groups.split(a_r), groups.split(-b_r),
                row_k, groups.split(grad_z)):
            x, y = block
            rows = block.shape[2]
            grad = _leading(buffers[0], num_classes, rows)
            for lo, hi, group, _ in segments:
                out = grad[:, lo:hi]
                # Separate products: an addcmul with two broadcast operands would not
                # vectorise (about 2x slower than mul + add).
                torch.mul(y[:, lo:hi], col_a[group], out=out)
                out.addcmul_(x[:, lo:hi], col_neg_b[group]).add_(col_k[group])
            if w is not None:  # the column part scales with the row weights
                grad.mul_(w)
            if k is not None:
                grad.add_(k)
            grad.addcmul_(y, a).addcmul_(x, neg_b)
            # Through the activation: the aten ops autograd itself uses.
            if ctx.activation == 'softmax':
                grad = torch.ops.aten._softmax_backward_data.out(
                    grad, x, 0, grad.dtype, grad_input=_leading(buffers[1], num_classes, rows))
            else:
                grad = torch.ops.aten.sigmoid_backward.grad_input(
                    grad, x, grad_input=_leading(buffers[1], num_classes, rows))
            if ctx.tau != 1.0:
                grad.div_(ctx.tau)
            # Through the transposed view: a plain copy for class-major logits; for
            # row-major ones the transposing copy that writes in memory order (faster).
            grad_rows.t().copy_(grad)
        return grad_z.to(ctx.logit_dtype), None, None, None, None, None, None, None


def _fits_one_block(logits: Tensor) -> bool:
    """Whether (N, C) ``logits`` are one block: then the few-operations core of
    ``dist_small`` runs instead of the blockwise one."""
    num_rows, num_classes = logits.shape
    return 0 < num_rows <= max(1, block_elements(logits.device) // max(num_classes, 1))


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
            groups = row_groups(block_elements(student_logits.device))
            row_share, has_rows = _row_shares(weight, groups)  # (N,), (G,)
            row_weights, class_weights = relation_weights(
                row_share, has_rows, student_logits.shape[1], teacher_max, inter_loss_weight,
                intra_loss_weight, intra_class_threshold)
            loss = relation_loss(rho_rows, rho_cols, row_weights, class_weights,
                                 group_sums=None if reduce_groups else groups.group_sums)
        if kl_weight > 0:
            kl = kd_loss_per_row(student_logits, teacher_logits, tau, activation) / tau**2
            groups = row_groups(block_elements(student_logits.device))
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
