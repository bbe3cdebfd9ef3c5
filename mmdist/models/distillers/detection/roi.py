# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Two-stage students (``StandardRoIHead``, e.g. Faster R-CNN): the teacher's box head
(the first stage of a cascade) classifies exactly the student's sampled RoIs on the
teacher's own FPN features; ``loss_cls`` compares the (R, C+1) RoI logits (softmax)."""
from typing import Any, Dict, List, Tuple

import torch
from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
from torch import Tensor, nn

from mmdist.models.utils.recorder import Record
from .unit import DetectionUnit, HeadOptions, register_unit


def roi_class_logits(roi_head: nn.Module, feats: Tuple[Tensor], rois: Tensor) -> Tensor:
    """(R, C+1) class logits of ``roi_head`` (its first stage for a cascade) for the
    (R, 5) ``rois`` on the FPN ``feats``; the teacher's for the student's sampled RoIs."""
    if isinstance(roi_head, CascadeRoIHead):
        return roi_head._bbox_forward(0, feats, rois)['cls_score']
    return roi_head._bbox_forward(feats, rois)['cls_score']


@register_unit
class RoIHeads(DetectionUnit):
    """A ``StandardRoIHead`` student, a ``StandardRoIHead`` or ``CascadeRoIHead`` teacher."""

    @classmethod
    def applies(cls, student: nn.Module, options: HeadOptions) -> bool:
        return getattr(student, 'roi_head', None) is not None

    @classmethod
    def supports(cls) -> str:
        return 'a StandardRoIHead (two-stage)'

    def __init__(self, student: nn.Module, teacher: nn.Module, options: HeadOptions) -> None:
        super().__init__()
        if (options.dense_rows, options.mask_padding, options.cross_head,
                options.score) != ('anchor', True, False, None):
            raise ValueError('model.dense_rows / model.mask_padding / model.cross_head / '
                             'model.score: they set how dense-head logits are compared; a '
                             'two-stage student compares RoI logits, so leave them at their '
                             'defaults (\'anchor\', True, False, None)')
        s_roi = student.roi_head
        if not isinstance(s_roi, StandardRoIHead):
            raise TypeError(f'model.student.roi_head: {type(s_roi).__name__} is not '
                            'supported; two-stage students need a StandardRoIHead')
        t_roi = getattr(teacher, 'roi_head', None)
        if not isinstance(t_roi, (StandardRoIHead, CascadeRoIHead)):
            kind = type(t_roi).__name__ if t_roi is not None else 'no roi_head'
            raise TypeError('teacher_cfg: a two-stage student needs a teacher with a '
                            f'StandardRoIHead or CascadeRoIHead, got {kind}')
        t_box = t_roi.bbox_head[0] if isinstance(t_roi, CascadeRoIHead) else t_roi.bbox_head
        if s_roi.bbox_head.num_classes != t_box.num_classes:
            raise ValueError(
                'model.student.roi_head.bbox_head.num_classes: student and teacher differ in '
                f'num_classes: student {s_roi.bbox_head.num_classes!r} vs teacher '
                f'{t_box.num_classes!r}')
        for name, box in (('model.student.roi_head.bbox_head', s_roi.bbox_head),
                          ('teacher_cfg model.roi_head.bbox_head', t_box)):
            if getattr(box.loss_cls, 'use_sigmoid', False):
                raise ValueError(f'{name}.loss_cls: RoI distillation compares softmax '
                                 'scores over C+1 classes; sigmoid box heads are not '
                                 'supported')
            if box.custom_cls_channels:
                raise ValueError(f'{name}.loss_cls: custom class channels are not supported')
        self.activation = 'softmax'
        self.activation_source = ('the student RoI head '
                                  '(model.student.roi_head.bbox_head.loss_cls)')

    def teacher_forward(self, teacher: nn.Module, feats: tuple, data_samples: List) -> Any:
        return feats  # its RoI head classifies the student's RoIs later

    def student_records(self, student: nn.Module) -> Dict[str, nn.Module]:
        return dict(rois=student.roi_head.bbox_roi_extractor, logits=student.roi_head.bbox_head)

    def losses(self, student: nn.Module, teacher: nn.Module, records: Dict[str, Record],
               teacher_out: Any, data_samples: List, loss_cls: nn.Module) -> Dict[str, Tensor]:
        with torch.no_grad():  # the teacher classifies the student's sampled RoIs
            teacher_logits = roi_class_logits(teacher.roi_head, teacher_out,
                                              records['rois'].args[1])
        return dict(loss_dist_cls=loss_cls(records['logits'].output[0], teacher_logits))
