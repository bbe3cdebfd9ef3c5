# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Dense class logits as loss rows: the row layout, the FPN levels paired by stride,
and the weights that leave out the batch padding."""
import logging
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from mmdist.models.utils.dense import dense_to_rows

#: How per-level (N, A*C, H, W) class logits become rows for ``loss_cls``: one row of C
#: scores per prior (``'anchor'``), or one row of A*C scores per location (``'location'``,
#: the official DIST detection code's reshape of the classifier output).
DENSE_ROWS = ('anchor', 'location')

Stride = Tuple[int, int]


class LevelPairs(NamedTuple):
    """FPN levels of two heads paired by stride (level indices of each head)."""

    student: List[int]
    teacher: List[int]
    strides: List[Stride]


def pair_levels(student_head: nn.Module, teacher_head: nn.Module, student_key: str,
                teacher_key: str) -> LevelPairs:
    """Pair the levels of two dense heads that have the same stride.

    Levels without a partner are named in the log; no common stride is an error naming
    both config keys.
    """
    s_strides = [tuple(s) for s in student_head.prior_generator.strides]
    t_strides = [tuple(s) for s in teacher_head.prior_generator.strides]
    common = [s for s in s_strides if s in t_strides]
    if not common:
        raise ValueError(f'{student_key} / {teacher_key}: the student and teacher heads '
                         f'share no FPN stride (student {s_strides}, teacher {t_strides}); '
                         'levels are paired by stride')
    for who, other, strides, key in (('student', 'teacher', s_strides, student_key),
                                     ('teacher', 'student', t_strides, teacher_key)):
        alone = [s for s in strides if s not in common]
        if alone:
            print_log(f'{key}: the {who} levels of stride {alone} have no {other} level '
                      f'of the same stride and are not distilled (paired strides: {common})',
                      'current', level=logging.WARNING)
    return LevelPairs([s_strides.index(s) for s in common], [t_strides.index(s) for s in common],
                      common)


class DenseRows:
    """Rows, row groups and padding weights of per-level (N, A*C, H, W) class logits.

    Args:
        strides: (w, h) stride of each compared level.
        anchors: A, the priors per location of each compared level.
        dense_rows: ``'anchor'``: (N*H*W*A, C) rows, one per prior; ``'location'``:
            (N*H*W, A*C) rows, one per feature-map location.
        mask_padding: weight 0 for rows of locations in the batch padding.
    """

    def __init__(self, strides: Sequence[Stride], anchors: Sequence[int], dense_rows: str,
                 mask_padding: bool) -> None:
        self.strides = list(strides)
        self.anchors = list(anchors)
        self.dense_rows = dense_rows
        self.mask_padding = mask_padding
        self._weight_cache: Dict[tuple, Optional[Tensor]] = {}

    def priors_per_row(self) -> List[int]:
        """Per level, the priors in one row: 1 (``'anchor'``) or A (``'location'``)."""
        return [1] * len(self.anchors) if self.dense_rows == 'anchor' else list(self.anchors)

    def rows(self, maps: Sequence[Tensor]) -> Tensor:
        """(rows of all levels, C or A*C), levels in order; rows ordered (n, h, w[, a])."""
        return torch.cat([dense_to_rows(m, a // k)
                          for m, a, k in zip(maps, self.anchors, self.priors_per_row())])

    def groups(self, maps: Sequence[Tensor]) -> List[int]:
        """The number of rows of each level."""
        return [m.shape[0] * m.shape[2] * m.shape[3] * a // k
                for m, a, k in zip(maps, self.anchors, self.priors_per_row())]

    def loss(self, loss_cls: nn.Module, student_maps: Sequence[Tensor], teacher_rows: Tensor,
             data_samples: List) -> Tensor:
        """``loss_cls`` of the student's maps against the teacher's :meth:`rows`: one
        row group per level, padding rows weighted 0 with ``mask_padding``."""
        weight = self.weight(student_maps, data_samples) if self.mask_padding else None
        return loss_cls(self.rows(student_maps), teacher_rows, weight,
                        groups=self.groups(student_maps))

    def weight(self, maps: Sequence[Tensor], data_samples: List) -> Optional[Tensor]:
        """(rows of all levels,) 0/1 weights, 0 for rows of locations outside each image's
        ``img_shape`` (a level's first ceil(img / stride) rows and columns are inside, as
        mmdet's ``valid_flags``); ``None`` when no row is in the padding. Cached per
        feature-map and image shapes (a training run sees few distinct ones)."""
        sizes = tuple(tuple(m.shape[-2:]) for m in maps)
        shapes = tuple(tuple(sample.img_shape[:2]) for sample in data_samples)
        device = maps[0].device
        key = (sizes, shapes, str(device))
        if key not in self._weight_cache:
            flags = []
            for (height, width), (stride_w, stride_h), a, k in zip(
                    sizes, self.strides, self.anchors, self.priors_per_row()):
                for img_h, img_w in shapes:
                    inside = torch.zeros(height, width, a // k, dtype=torch.bool, device=device)
                    inside[:-(-img_h // stride_h), :-(-img_w // stride_w)] = True
                    flags.append(inside.flatten())
            flags = torch.cat(flags)
            if len(self._weight_cache) >= 64:  # bounded (multi-scale training)
                self._weight_cache.clear()
            self._weight_cache[key] = None if bool(flags.all()) else flags.float()
        return self._weight_cache[key]
