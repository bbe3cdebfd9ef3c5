# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""RTMDet heads (``RTMDetHead``; ``RTMDetSepBNHead`` with per-level convs and BatchNorms,
conv weights shared or not): the classification branch of a level is ``cls_convs`` then
``rtm_cls``. With ``with_objectness=True`` the head's class scores are
``inverse_sigmoid(sqrt(sigmoid(cls) * sigmoid(obj)))``, ``obj`` from the box branch's
convs and ``rtm_obj``; the reader computes them the same way (mmdet's own functions).
The stock RTMDet configs set ``with_objectness=False``."""
from typing import List, Sequence

from mmdet.models.dense_heads import RTMDetHead, RTMDetSepBNHead
from mmdet.models.layers.transformer import inverse_sigmoid
from mmdet.models.utils import sigmoid_geometric_mean
from torch import Tensor, nn

from .heads import DenseHeadReader, register_reader


class RTMDetReader(DenseHeadReader):
    """``RTMDetHead`` (one ``cls_convs`` and ``rtm_cls`` for all levels) and
    ``RTMDetSepBNHead`` (``cls_convs[level]``, ``rtm_cls[level]``)."""

    def __init__(self, head_type: type, separate: bool) -> None:
        super().__init__(head_type, 'rtm_cls')
        self.separate = separate

    def _branch(self, head: nn.Module, name: str, level: int):
        modules = getattr(head, name)
        return modules[level] if self.separate else modules

    def cls_features(self, head: nn.Module, x: Tensor, level: int) -> Tensor:
        for conv in self._branch(head, 'cls_convs', level):
            x = conv(x)
        return x

    def classifier(self, head: nn.Module, level: int) -> nn.Module:
        return self._branch(head, 'rtm_cls', level)

    def score_logits(self, head: nn.Module, feats: Sequence[Tensor], levels: Sequence[int],
                     score: str) -> List[Tensor]:
        logits = super().score_logits(head, feats, levels, score)
        if not head.with_objectness:
            return logits
        joint = []
        for level, cls_score in zip(levels, logits):
            reg_feat = feats[level]
            for conv in self._branch(head, 'reg_convs', level):
                reg_feat = conv(reg_feat)
            objectness = self._branch(head, 'rtm_obj', level)(reg_feat)
            joint.append(inverse_sigmoid(sigmoid_geometric_mean(cls_score, objectness)))
        return joint


register_reader(RTMDetReader(RTMDetHead, separate=False))
register_reader(RTMDetReader(RTMDetSepBNHead, separate=True))
