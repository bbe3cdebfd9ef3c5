# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Turn dense prediction maps into (rows, classes) matrices for the distillation losses."""
from typing import Sequence, Tuple

import torch
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


def _class_major_copy(maps: Sequence[Tensor], num_anchors: Sequence[int]) -> Tensor:
    """The (C, rows) copy of :func:`dense_to_class_major` (no autograd)."""
    num_classes = maps[0].shape[1] // num_anchors[0]
    sizes = [m.shape[0] * m.shape[2] * m.shape[3] * a for m, a in zip(maps, num_anchors)]
    columns = maps[0].new_empty(num_classes, sum(sizes))
    start = 0
    for m, anchors, size in zip(maps, num_anchors, sizes):
        n, _, h, w = m.shape
        columns[:, start:start + size].view(num_classes, n, h, w, anchors).copy_(
            m.view(n, anchors, num_classes, h, w).permute(2, 0, 3, 4, 1))
        start += size
    return columns


class _ClassMajorRows(torch.autograd.Function):
    """:func:`dense_to_class_major` as one autograd node: one copy per map each way."""

    @staticmethod
    def forward(ctx, num_anchors: Tuple[int, ...], *maps: Tensor) -> Tensor:
        columns = _class_major_copy(maps, num_anchors)
        ctx.layout = [(m.shape, anchors, m.shape[0] * m.shape[2] * m.shape[3] * anchors)
                      for m, anchors in zip(maps, num_anchors)]
        return columns

    @staticmethod
    def backward(ctx, grad: Tensor):
        grads, start = [], 0
        for shape, anchors, size in ctx.layout:
            n, channels, h, w = shape
            block = grad[:, start:start + size].view(channels // anchors, n, h, w, anchors)
            grads.append(block.permute(1, 4, 0, 2, 3).reshape(shape))
            start += size
        return (None, *grads)


def dense_to_class_major(maps: Sequence[Tensor], num_anchors: Sequence[int]) -> Tensor:
    """(C, rows) class-major matrix of several (N, A*C, H, W) maps (e.g. FPN levels).

    Column ``r`` is row ``r`` of ``torch.cat([dense_to_rows(m, a) for m, a in ...])``,
    so ``dense_to_class_major(maps, num_anchors).t()`` is that (rows, C) matrix as a
    view of class-major memory, which the DIST cores read without transposing. One
    autograd node, one copy per map in forward and in backward.

    Args:
        maps: (N, A*C, H, W) maps with the same C.
        num_anchors: A of each map.

    Returns:
        (C, sum of N*H*W*A) tensor.
    """
    if not maps or len(maps) != len(num_anchors):
        raise ValueError(f'expected one num_anchors per map, got {len(maps)} maps and '
                         f'{len(num_anchors)} num_anchors')
    classes = set()
    for logits, anchors in zip(maps, num_anchors):
        if logits.dim() != 4 or anchors < 1 or logits.shape[1] % anchors:
            raise ValueError(f'expected an (N, A*C, H, W) map with A = {anchors}, got shape '
                             f'{tuple(logits.shape)}')
        classes.add(logits.shape[1] // anchors)
    if len(classes) != 1:
        raise ValueError(f'the maps have different class counts: {sorted(classes)}')
    num_anchors = tuple(int(a) for a in num_anchors)
    if torch.is_grad_enabled() and any(m.requires_grad for m in maps):
        return _ClassMajorRows.apply(num_anchors, *maps)
    return _class_major_copy(maps, num_anchors)  # e.g. the teacher's: no autograd node
