# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The DIST loss as a function of the Pearson correlations, shared by both DIST cores."""
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor


def correlation(s_xy: Tensor, s_xx: Tensor, s_yy: Tensor,
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


def relation_loss(rho_rows: Tensor, rho_cols: Tensor, teacher_max: Tensor, row_share: Tensor,
                  has_rows: Tensor, inter_loss_weight: float, intra_loss_weight: float,
                  intra_class_threshold: Optional[float],
                  group_sums: Optional[Callable[[Tensor], Tensor]] = None
                  ) -> Tuple[Tensor, Tensor]:
    """The DIST loss (before ``tau^2``) from the correlations, and the class weighting.

    Both terms are fixed (no-gradient) weightings of the correlations:
    ``inter = sum_i v_i (1 - rho_i)`` with ``v_i = w_i / W_g(i)`` (each group's weighted
    mean), ``intra = sum_g has_g (1 - sum_c s_gc rho_gc)`` with ``s_gc = 1 / C``, or
    ``1 / |present_g|`` over the classes present in group g (a group with no class
    present adds 0).

    Args:
        rho_rows: (N,) row correlations.
        rho_cols: (G, C) column correlations per group.
        teacher_max: (G, C) teacher's largest probability (read with the threshold only).
        row_share: (N,) ``v_i``.
        has_rows: (G,) 1 for groups with weight, else 0.
        inter_loss_weight, intra_loss_weight, intra_class_threshold: as in ``dist_loss``.
        group_sums: if given, a function from (N,) row values to their (G,) sums per
            group: the loss is then returned per group, (G,), instead of summed.

    Returns:
        The scalar (or (G,)) loss and the (G, C) class weights ``has_g s_gc``:
        ``d loss / d rho_rows = -inter_loss_weight * row_share`` and
        ``d loss / d rho_cols = -intra_loss_weight * class_share``.
    """
    if intra_class_threshold is None:
        intra_rows = has_rows
        class_share = has_rows[:, None].expand_as(rho_cols) / rho_cols.shape[1]
    else:
        present = (teacher_max >= intra_class_threshold).to(rho_cols.dtype)
        num_present = present.sum(1)
        intra_rows = has_rows * (num_present > 0)
        class_share = present * (has_rows / num_present.clamp_min(1))[:, None]
    if group_sums is None:
        inter = row_share.sum() - row_share @ rho_rows
        intra = intra_rows.sum() - (class_share * rho_cols).sum()
    else:
        inter = group_sums(row_share * (1 - rho_rows))
        intra = intra_rows - (class_share * rho_cols).sum(1)
    return inter_loss_weight * inter + intra_loss_weight * intra, class_share
