# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Turn dense prediction maps into (rows, classes) matrices for the distillation losses."""
from torch import Tensor


def dense_to_rows(logits: Tensor, num_anchors: int = 1) -> Tensor:
    """(N, A*C, H, W) -> (N*H*W*A, C), rows ordered (n, h, w, a).

    Channel ``a * C + c`` becomes column ``c`` of row ``(n, h, w, a)``: the anchor-major
    layout mmdet's dense heads use (``cls_score.permute(0, 2, 3, 1).reshape(-1, C)`` in
    ``loss_by_feat``). With ``num_anchors=1`` this is the plain (N, C, H, W) ->
    (N*H*W, C) used for segmentation logits and anchor-free heads.

    Args:
        logits: (N, A*C, H, W) map.
        num_anchors: A, the priors per location.

    Returns:
        (N*H*W*A, C) view or copy of ``logits``.
    """
    if logits.dim() != 4:
        raise ValueError(f'expected an (N, A*C, H, W) map, got shape {tuple(logits.shape)}')
    channels = logits.shape[1]
    if num_anchors < 1 or channels % num_anchors:
        raise ValueError(f'{channels} channels cannot be split into num_anchors={num_anchors}')
    return logits.permute(0, 2, 3, 1).reshape(-1, channels // num_anchors)
