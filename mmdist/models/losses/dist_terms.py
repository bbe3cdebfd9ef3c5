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
    inv = product.clamp_min(eps * eps).rsqrt_()
    rho = s_xy * inv
    # Where unclamped s_xx > 0; elsewhere the quotient is not selected.
    coef = torch.where(product > eps * eps, rho / s_xx, 0.0)
    return rho, inv, coef


def relation_weights(row_share: Tensor, has_rows: Tensor, num_classes: int,
                     teacher_max: Optional[Tensor], inter_loss_weight: float,
                     intra_loss_weight: float,
                     intra_class_threshold: Optional[float]) -> Tuple[Tensor, Tensor]:
    """The fixed weights ``a`` of the DIST loss ``sum_k a_k (1 - rho_k)`` (before ``tau^2``).

    ``inter = sum_i v_i (1 - rho_i)`` with ``v_i = w_i / W_g(i)`` (each group's weighted
    mean) and ``intra = sum_g sum_c s_gc (1 - rho_gc)`` with ``s_gc = has_g / C``, or
    ``has_g / |present_g|`` over the classes present in group g (a group with no class
    present adds 0). The weights carry no gradient: ``d loss / d rho_k = -a_k``.

    Args:
        row_share: (N,) ``v_i``.
        has_rows: (G,) 1 for groups with weight, else 0.
        num_classes: C.
        teacher_max: (G, C) teacher's largest probability (read with the threshold only).
        inter_loss_weight, intra_loss_weight, intra_class_threshold: as in ``dist_loss``.

    Returns:
        (N,) row weights ``inter_loss_weight * v`` and (G, C) class weights
        ``intra_loss_weight * s``.
    """
    if intra_class_threshold is None:
        class_share = (has_rows / num_classes)[:, None].expand(-1, num_classes)
    else:
        present = (teacher_max >= intra_class_threshold).to(has_rows.dtype)
        class_share = present * (has_rows / present.sum(1).clamp_min(1))[:, None]
    return inter_loss_weight * row_share, intra_loss_weight * class_share


def relation_loss(rho_rows: Tensor, rho_cols: Tensor, row_weights: Tensor,
                  class_weights: Tensor,
                  group_sums: Optional[Callable[[Tensor], Tensor]] = None) -> Tensor:
    """``sum_i a_i (1 - rho_i) + sum_gc b_gc (1 - rho_gc)``: the DIST loss (before
    ``tau^2``) from (N,) row and (G, C) column correlations and the weights of
    :func:`relation_weights`; (G,) per group if ``group_sums`` (a function from (N,) row
    values to their (G,) sums per group) is given, else a scalar."""
    rows = row_weights * (1 - rho_rows)
    cols = class_weights * (1 - rho_cols)
    if group_sums is None:
        return rows.sum() + cols.sum()
    return group_sums(rows) + cols.sum(1)
