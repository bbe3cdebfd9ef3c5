# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""YOLOX heads: per level, class logits ``multi_level_conv_cls[level]`` after
``multi_level_cls_convs[level]``, and a separate objectness logit
``multi_level_conv_obj[level]`` after the box branch's ``multi_level_reg_convs[level]``.

YOLOX trains its class logits on the positive priors only (objectness on all priors)
and scores a detection with ``sigmoid(cls) * sigmoid(obj)``. ``score='joint'`` (the
default) compares that joint score as its logit; ``score='class'`` the class logits
alone, including those of background priors, which YOLOX never trains
(docs/detection.md, "YOLOX").
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import YOLOXHead
from torch import Tensor, nn

from .heads import DenseHeadReader, register_reader

#: The joint probability is capped at 1 - 1e-6 (a logit of 13.8), so that the logit and
#: its gradient stay finite when both sigmoids round to 1.
_MAX_LOG_JOINT = float(torch.log1p(torch.tensor(-1e-6, dtype=torch.float64)))


def joint_logit(cls_score: Tensor, objectness: Tensor) -> Tensor:
    """``logit(sigmoid(cls_score) * sigmoid(objectness))``, computed in log space.

    Args:
        cls_score: (N, C, H, W) class logits.
        objectness: (N, 1, H, W) objectness logits.

    Returns:
        (N, C, H, W) logits whose sigmoid is YOLOX's detection score.
    """
    log_joint = (F.logsigmoid(cls_score) + F.logsigmoid(objectness)).clamp(max=_MAX_LOG_JOINT)
    return log_joint - torch.log(-torch.expm1(log_joint))


class YOLOXReader(DenseHeadReader):
    """``YOLOXHead``: per-level class branch, classifier and objectness."""

    has_objectness = True

    def __init__(self) -> None:
        super().__init__(YOLOXHead, 'multi_level_conv_cls', 'strides')

    def cls_features(self, head: nn.Module, x: Tensor, level: int) -> Tensor:
        return head.multi_level_cls_convs[level](x)

    def classifier(self, head: nn.Module, level: int) -> nn.Module:
        return head.multi_level_conv_cls[level]

    def score_logits(self, head: nn.Module, feats: Sequence[Tensor], levels: Sequence[int],
                     score: str) -> List[Tensor]:
        logits = super().score_logits(head, feats, levels, score)
        if score == 'class':
            return logits
        return [joint_logit(cls_score, head.multi_level_conv_obj[level](
            head.multi_level_reg_convs[level](feats[level])))
                for level, cls_score in zip(levels, logits)]

    def output_logits(self, output: Tuple, levels: Sequence[int], score: str) -> List[Tensor]:
        cls_scores, _, objectnesses = output
        if score == 'class':
            return [cls_scores[level] for level in levels]
        return [joint_logit(cls_scores[level], objectnesses[level]) for level in levels]


register_reader(YOLOXReader())
