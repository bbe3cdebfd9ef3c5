# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST: inter-class and intra-class Pearson relation between predicted distributions.

Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.
The math, shapes and deviations from the official code are in ``docs/losses.md``.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from mmdist.registry import MODELS
from .kd_loss import kd_loss_per_row
from .utils import (autocast_disabled, check_activation, check_logits, check_non_negative,
                    check_positive, compute_dtype, logits_to_probs)


#: Elements per row block: a (rows x C) float32 block is about 1 MiB, so the few block
#: temporaries of a step live in cache instead of going through main memory.
BLOCK_ELEMENTS = 1 << 18


def _activation_backward(grad_p: Tensor, p: Tensor, activation: str, tau: float) -> Tensor:
    """``d L / d z`` from ``d L / d p`` for ``p = activation(z / tau)``, in place on grad_p."""
    if activation == 'softmax':
        grad_p.sub_((grad_p * p).sum(dim=1, keepdim=True)).mul_(p)
    else:
        grad_p.mul_(p - p * p)
    if tau != 1.0:
        grad_p.div_(tau)
    return grad_p


def _row_blocks(num_rows: int, num_classes: int):
    step = max(1, BLOCK_ELEMENTS // max(num_classes, 1))
    return [(start, min(start + step, num_rows)) for start in range(0, num_rows, step)]


def _correlation(s_xy: Tensor, s_xx: Tensor, s_yy: Tensor,
                 eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """``rho = s_xy / max(sqrt(s_xx s_yy), eps)`` and the gradient coefficients.

    ``d rho / d x_k = w_k (y_k * inv - coef * x_k)`` for centred ``x``, ``y``; ``coef = 0``
    where the normaliser is clamped (a constant row or column: ``rho = 0``).
    """
    product = s_xx * s_yy
    inv = product.clamp_min(eps * eps).rsqrt()
    rho = s_xy * inv
    unclamped = product > eps * eps
    coef = torch.where(unclamped, rho / s_xx.clamp_min(torch.finfo(s_xx.dtype).tiny),
                       torch.zeros_like(rho))
    return rho, inv, coef


class _DISTRelations(torch.autograd.Function):
    """Row and (weighted) column Pearson correlations of activation(z / tau), and the
    teacher's largest probability per class over the rows of positive weight.

    The (N, C) probabilities are computed once and kept for backward; every other step
    runs over row blocks (:data:`BLOCK_ELEMENTS`), so its temporaries stay in cache and
    never reach full size. Forward makes two block passes (column means first, so every
    sum is over exactly centred values) and keeps only vectors. Backward writes each
    block of ``d L / d z`` directly: ``d rho / d p = w * (y_c * inv - coef * x_c)`` is
    already centred (no projection pass), and with the saved means it is an affine
    function of the raw probabilities per row and column.
    """

    @staticmethod
    def forward(ctx, z_s: Tensor, z_t: Tensor, weight: Optional[Tensor], tau: float,
                activation: str, eps: float,
                with_teacher_max: bool) -> Tuple[Tensor, Tensor, Tensor]:
        p_s = logits_to_probs(z_s, activation, tau)
        p_t = logits_to_probs(z_t, activation, tau)
        num_rows, num_classes = p_s.shape
        blocks = _row_blocks(num_rows, num_classes)
        s_xy_r, s_xx_r, s_yy_r = (p_s.new_empty(num_rows) for _ in range(3))
        # A softmax row sums to one: its mean is 1/C, no reduction needed.
        softmax = activation == 'softmax'
        row_mean_s, row_mean_t = ((p_s.new_full((num_rows, ), 1.0 / num_classes)
                                   for _ in range(2)) if softmax else
                                  (p_s.new_empty(num_rows) for _ in range(2)))
        if weight is None:
            mean_s, mean_t = p_s.mean(0), p_t.mean(0)
        else:
            total = weight.sum().clamp_min(torch.finfo(p_s.dtype).tiny)
            mean_s, mean_t = weight @ p_s / total, weight @ p_t / total
        s_xy_c, s_xx_c, s_yy_c, teacher_max = (p_s.new_zeros(num_classes) for _ in range(4))
        for start, end in blocks:
            x, y = p_s[start:end], p_t[start:end]
            if with_teacher_max:
                valid_y = y if weight is None else y * (weight[start:end, None] > 0)
                torch.maximum(teacher_max, valid_y.amax(0), out=teacher_max)
            # Row statistics of row-centred values.
            if not softmax:
                row_mean_s[start:end] = x.mean(1)
                row_mean_t[start:end] = y.mean(1)
            x_r = x - row_mean_s[start:end, None]
            y_r = y - row_mean_t[start:end, None]
            s_xy_r[start:end] = (x_r * y_r).sum(1)
            s_xx_r[start:end] = x_r.square_().sum(1)
            s_yy_r[start:end] = y_r.square_().sum(1)
            # Column statistics of column-centred values (weighted).
            x_c = x - mean_s
            y_c = y - mean_t
            if weight is not None:
                y_c_w = y_c * weight[start:end, None]
                s_xy_c += (x_c * y_c_w).sum(0)
                s_yy_c += (y_c * y_c_w).sum(0)
                s_xx_c += (x_c.square_().mul_(weight[start:end, None])).sum(0)
            else:
                s_xy_c += (x_c * y_c).sum(0)
                s_yy_c += y_c.square_().sum(0)
                s_xx_c += x_c.square_().sum(0)
        rho_r, inv_r, coef_r = _correlation(s_xy_r, s_xx_r, s_yy_r, eps)
        rho_c, inv_c, coef_c = _correlation(s_xy_c, s_xx_c, s_yy_c, eps)
        ctx.save_for_backward(p_s, p_t, weight, row_mean_s, row_mean_t, inv_r, coef_r, mean_s,
                              mean_t, inv_c, coef_c)
        ctx.tau, ctx.activation, ctx.logit_dtype = tau, activation, z_s.dtype
        ctx.mark_non_differentiable(teacher_max)
        return rho_r, rho_c, teacher_max

    @staticmethod
    def backward(ctx, grad_r: Tensor, grad_c: Tensor, _grad_max: Optional[Tensor]):
        (p_s, p_t, weight, row_mean_s, row_mean_t, inv_r, coef_r, mean_s, mean_t, inv_c,
         coef_c) = ctx.saved_tensors
        # d L / d p = g_r (inv_r (y - ybar_r) - coef_r (x - xbar_r))
        #           + w g_c (inv_c (y - ybar_c) - coef_c (x - xbar_c))
        #           = y * (a_r + w a_c) - x * (b_r + w b_c) + (k_r + w k_c)
        a_r, b_r = grad_r * inv_r, grad_r * coef_r  # (N,)
        a_c, b_c = grad_c * inv_c, grad_c * coef_c  # (C,)
        k_r = b_r * row_mean_s - a_r * row_mean_t
        k_c = b_c * mean_s - a_c * mean_t
        grad_z = torch.empty_like(p_s)
        neg_b_r, neg_b_c = -b_r[:, None], -b_c
        for start, end in _row_blocks(*p_s.shape):
            x, y = p_s[start:end], p_t[start:end]
            if weight is None:
                w_a, w_neg_b, w_k = a_c, neg_b_c, k_c
            else:
                w = weight[start:end, None]
                w_a, w_neg_b, w_k = w * a_c, w * neg_b_c, w * k_c
            grad = torch.add(w_k, k_r[start:end, None])
            grad.addcmul_(y, a_r[start:end, None]).addcmul_(y, w_a)
            grad.addcmul_(x, neg_b_r[start:end]).addcmul_(x, w_neg_b)
            grad_z[start:end] = _activation_backward(grad, x, ctx.activation, ctx.tau)
        return grad_z.to(ctx.logit_dtype), None, None, None, None, None, None


def dist_relations(student_logits: Tensor, teacher_logits: Tensor,
                   weight: Optional[Tensor] = None, tau: float = 1.0,
                   activation: str = 'softmax', eps: float = 1e-8,
                   with_teacher_max: bool = True) -> Tuple[Tensor, Tensor, Tensor]:
    """Pearson correlations of rows and (weighted) columns of ``activation(z / tau)``.

    ``rho(x, y) = cov(x, y) / max(sqrt(var(x) * var(y)), eps)``; a constant row or column
    has ``rho = 0`` with finite gradients. Gradients flow to the student logits only.

    Args:
        student_logits: (N, C) student logits.
        teacher_logits: (N, C) teacher logits (no gradient).
        weight: optional (N,) non-negative row weights (of the compute dtype); the column correlations
            are weighted Pearson correlations (0/1 weights = computing on the kept rows).
        tau: temperature.
        activation: ``'softmax'`` over C, or ``'sigmoid'`` per entry.
        eps: lower bound of the normaliser.
        with_teacher_max: compute ``teacher_max`` (zeros otherwise).

    Returns:
        ``(rho_rows, rho_cols, teacher_max)`` of shapes (N,), (C,), (C,), float32
        (float64 for float64 logits); ``teacher_max[c]`` is the teacher's largest
        probability of class c over the rows of positive weight (no gradient).
    """
    return _DISTRelations.apply(student_logits, teacher_logits.detach(), weight, tau,
                                activation, eps, with_teacher_max)


def dist_loss(student_logits: Tensor,
              teacher_logits: Tensor,
              weight: Optional[Tensor] = None,
              inter_loss_weight: float = 1.0,
              intra_loss_weight: float = 1.0,
              tau: float = 1.0,
              activation: str = 'softmax',
              eps: float = 1e-8,
              kl_weight: float = 0.0,
              intra_class_threshold: Optional[float] = None) -> Tensor:
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

    Returns:
        Scalar float32 loss. With no row of positive weight it is a zero that still
        belongs to the autograd graph.
    """
    check_logits(student_logits, teacher_logits, weight)
    with autocast_disabled(student_logits):
        if weight is not None:
            weight = weight.detach().to(compute_dtype(student_logits))
        rho_rows, rho_cols, teacher_max = dist_relations(
            student_logits, teacher_logits, weight, tau, activation, eps,
            with_teacher_max=intra_class_threshold is not None)
        if intra_class_threshold is None:
            intra_rho = rho_cols.mean()
        else:
            present = (teacher_max >= intra_class_threshold).to(rho_cols.dtype)
            # Mean over present classes; 0 (1 - 1) when no class is present.
            intra_rho = (rho_cols * present).sum() / present.sum().clamp_min(1) + (
                present.sum() == 0).to(rho_cols.dtype)
        if weight is None:
            inter = 1 - rho_rows.mean()
            intra = 1 - intra_rho
        else:
            total = weight.sum()
            # sum(w * (1 - rho)) / sum(w): exactly 0 (in the graph) when every w is 0.
            inter = (weight * (1 - rho_rows)).sum() / total.clamp_min(1e-12)
            intra = (1 - intra_rho) * (total > 0)
        loss = inter_loss_weight * inter + intra_loss_weight * intra
        if kl_weight > 0:
            kl = kd_loss_per_row(student_logits, teacher_logits, tau, activation) / tau**2
            if weight is None:
                kl = kl.mean()
            else:
                kl = (weight * kl).sum() / weight.sum().clamp_min(1e-12)
            loss = loss + kl_weight * kl
        return tau**2 * loss


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
            eps=self.eps,
            kl_weight=self.kl_weight,
            intra_class_threshold=self.intra_class_threshold)

    def extra_repr(self) -> str:
        return (f'inter_loss_weight={self.inter_loss_weight}, '
                f'intra_loss_weight={self.intra_loss_weight}, tau={self.tau}, '
                f'loss_weight={self.loss_weight}, activation={self.activation!r}, '
                f'kl_weight={self.kl_weight}, '
                f'intra_class_threshold={self.intra_class_threshold}')
