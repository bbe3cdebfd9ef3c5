# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST for mmsegmentation 1.x encoder-decoder segmentors: decode and auxiliary logits."""
import logging
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from mmdist.registry import MODELS
from ..utils.dense import dense_to_rows
from ..utils.recorder import Record
from ..utils.teacher import ConfigSource
from .base_distiller import BaseDistiller, build_loss
from .seg_head_logits import head_logits


@MODELS.register_module()
class SegmentationDistiller(BaseDistiller):
    """Distil an mmseg ``EncoderDecoder`` into another (``type='mmdist.SegmentationDistiller'``).

    ``loss_decode`` compares the decode heads' per-pixel class logits and ``loss_aux``
    (optional) the student's auxiliary head with the teacher's auxiliary head - or, for a
    teacher without one (SegFormer, Mask2Former), with the teacher's decode head. Rows
    are pixels at the resolution of the student head's logits (1/8 for the d8 CNNs, 1/4
    for SegFormer), (N, C, h, w) -> (N*h*w, C); teacher logits of another size are resized
    to it. Pixels whose (nearest-downsampled) label is the student decode head's
    ``ignore_index`` - which includes the batch padding, filled with ``seg_pad_val=255``
    - are left out (``mask_ignored``). The teacher heads' logits come from the units of
    :mod:`~mmdist.models.distillers.seg_head_logits` (``conv_seg`` classifiers resized
    bilinearly; Mask2Former's semantic map as log-probabilities).

    Args:
        student: student segmentor config (e.g. ``{{_base_.model}}``).
        teacher_cfg, teacher_ckpt: the teacher (see :class:`BaseDistiller`).
        loss_decode: loss on the decode-head logits (``loss_dist_decode``).
        loss_aux: loss on the student's auxiliary-head logits (``loss_dist_aux``), or None.
        mask_ignored: weight 0 for pixels labelled ``ignore_index`` (and the batch
            padding); ``False`` compares every pixel, as the official DIST code does.
        **kwargs: the other arguments of :class:`BaseDistiller`.
    """

    def __init__(self, student: dict, teacher_cfg: ConfigSource, teacher_ckpt: Optional[str],
                 loss_decode: dict = dict(type='mmdist.DISTLoss'),
                 loss_aux: Optional[dict] = None, mask_ignored: bool = True,
                 **kwargs) -> None:
        if not isinstance(mask_ignored, bool):
            raise TypeError(f'model.mask_ignored: expected True or False, got {mask_ignored!r}')
        super().__init__(student, teacher_cfg, teacher_ckpt, **kwargs)
        self.mask_ignored = mask_ignored
        self.student_decode, self.teacher_decode = self._head_pair(
            'decode_head', 'decode_head', 'model.student.decode_head.num_classes')
        self.loss_decode = build_loss(loss_decode, 'model.loss_decode', 'softmax',
                                      'the student decode head')
        self.loss_aux = None
        self.student_aux = self.teacher_aux = None  # teacher: its auxiliary or decode head
        if loss_aux is not None:
            if self._head(self.student, 'auxiliary_head', 'model.student') is None:
                raise ValueError('model.loss_aux: model.student.auxiliary_head is missing; '
                                 'set model.loss_aux=None for a student without one')
            target = 'auxiliary_head'
            if self._head(self.teacher, target, 'teacher_cfg model') is None:
                target = 'decode_head'
                print_log('model.loss_aux: the teacher has no auxiliary head; the student\'s '
                          'auxiliary logits are compared with the teacher\'s decode logits',
                          'current', level=logging.INFO)
            self.student_aux, self.teacher_aux = self._head_pair(
                'auxiliary_head', target, 'model.student.auxiliary_head.num_classes')
            self.loss_aux = build_loss(loss_aux, 'model.loss_aux', 'softmax',
                                       'the student auxiliary head')
        elif self._head(self.student, 'auxiliary_head', 'model.student') is not None:
            print_log('model.loss_aux is None: the student\'s auxiliary head is trained by '
                      'its own loss only (set model.loss_aux to distil it)', 'current',
                      level=logging.INFO)

    # ----------------------------------------------------------------- build-time checks
    @staticmethod
    def _head(owner: nn.Module, attr: str, prefix: str) -> Optional[nn.Module]:
        """``owner.<attr>`` (None if absent); a list of heads is an error."""
        head = getattr(owner, attr, None)
        if isinstance(head, nn.ModuleList):
            raise TypeError(f'{prefix}.{attr}: a list of heads ({type(owner).__name__}) is '
                            'not supported; use a single head')
        return head

    def _head_pair(self, student_attr: str, teacher_attr: str, classes_key: str):
        """The logit units of a student head and the teacher head it is compared with."""
        units = []
        for owner, attr, prefix in ((self.student, student_attr, 'model.student'),
                                    (self.teacher, teacher_attr, 'teacher_cfg model')):
            head = self._head(owner, attr, prefix)
            if head is None:
                raise ValueError(f'{prefix}.{attr} is missing; both networks need a decode '
                                 'head')
            units.append(head_logits(head, f'{prefix}.{attr}'))
        units[0].student_module(f'model.student.{student_attr}')  # a supported student?
        self._check_equal('num_classes', units[0].head.num_classes, units[1].head.num_classes,
                          classes_key)
        return units

    # ----------------------------------------------------------------- training
    def teacher_forward(self, inputs: Tensor, data_samples: List):
        """What the teacher's decode head (and, with ``loss_aux``, its auxiliary or decode
        head) outputs: logits, or Mask2Former's class scores and masks (see
        :mod:`~mmdist.models.distillers.seg_head_logits`)."""
        feats = self.teacher.extract_feat(inputs)
        decode = self.teacher_decode.teacher_outputs(feats)
        if self.loss_aux is None:
            return decode, None
        if self.teacher_aux.head is self.teacher_decode.head:
            return decode, decode
        return decode, self.teacher_aux.teacher_outputs(feats)

    def student_records(self) -> Dict[str, nn.Module]:
        watched = {'decode': self.student_decode.student_module('model.student.decode_head')}
        if self.loss_aux is not None:
            watched['aux'] = self.student_aux.student_module('model.student.auxiliary_head')
        return watched

    def distill_losses(self, records: Dict[str, Record], teacher_outputs: Tuple,
                       data_samples: List) -> Dict[str, Tensor]:
        student_aux = records['aux'].output if self.loss_aux is not None else None
        return self.logit_losses(records['decode'].output, teacher_outputs[0], student_aux,
                                 teacher_outputs[1], data_samples)

    def distill_loss_names(self) -> List[str]:
        return ['loss_dist_decode'] + (['loss_dist_aux'] if self.loss_aux is not None else [])

    def logit_losses(self, student_decode: Tensor, teacher_decode,
                     student_aux: Optional[Tensor], teacher_aux,
                     data_samples: List) -> Dict[str, Tensor]:
        """``loss_dist_decode`` (and ``loss_dist_aux``) from the student heads' (N, C, h, w)
        logits and the teacher heads' outputs (:meth:`teacher_forward`)."""
        losses = dict(loss_dist_decode=self._pixel_loss(
            self.loss_decode, student_decode, self.student_decode, self.teacher_decode,
            teacher_decode, data_samples))
        if self.loss_aux is not None:
            losses['loss_dist_aux'] = self._pixel_loss(
                self.loss_aux, student_aux, self.student_aux, self.teacher_aux, teacher_aux,
                data_samples)
        return losses

    def _valid_pixels(self, data_samples: List, size) -> Tensor:
        """(N*h*w,) float mask: 1 where the label at logit resolution is not ignored."""
        labels = torch.stack([sample.gt_sem_seg.data for sample in data_samples])
        (height, width), (h, w) = labels.shape[-2:], tuple(size)
        if height % h == 0 and width % w == 0:  # what 'nearest' picks, without a copy
            labels = labels[..., ::height // h, ::width // w]
        else:
            labels = F.interpolate(labels.float(), size=(h, w), mode='nearest')
        return (labels != self.student.decode_head.ignore_index).flatten().float()

    def _pixel_loss(self, loss: nn.Module, student_logits: Tensor, student_unit, teacher_unit,
                    teacher_outputs, data_samples: List) -> Tensor:
        """``loss`` on (pixels, C) rows of the student's (N, C, h, w) logits and the
        teacher's logits at the same (h, w), ignored pixels weighted 0 (``mask_ignored``)."""
        size = student_logits.shape[-2:]
        with torch.no_grad():
            teacher_logits = teacher_unit.logits(teacher_outputs, size,
                                                 student_unit.head.align_corners)
        valid = self._valid_pixels(data_samples, size) if self.mask_ignored else None
        return loss(dense_to_rows(student_logits), dense_to_rows(teacher_logits), valid)
