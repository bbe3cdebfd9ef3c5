# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST for mmsegmentation 1.x encoder-decoder segmentors: decode and auxiliary logits."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.utils import resize
from torch import Tensor, nn

from mmdist.registry import MODELS
from ..utils.dense import dense_to_rows
from ..utils.recorder import Record
from ..utils.teacher import ConfigSource
from .base_distiller import BaseDistiller, build_loss


@MODELS.register_module()
class SegmentationDistiller(BaseDistiller):
    """Distil an mmseg ``EncoderDecoder`` into another (``type='mmdist.SegmentationDistiller'``).

    ``loss_decode`` compares the decode heads' class logits and ``loss_aux`` (optional) the
    auxiliary heads', both at the student's logit resolution (1/8 for the d8 models) with
    rows = pixels, (N, C, H, W) -> (N*H*W, C). Pixels whose
    (nearest-downsampled) label is the student decode head's ``ignore_index`` - which
    includes the batch padding, filled with ``seg_pad_val=255`` - are left out of both
    DIST terms. Teacher logits of another resolution are resized bilinearly with the
    student head's ``align_corners``, as mmseg resizes logits for its own losses.

    Args:
        student: student segmentor config (e.g. ``{{_base_.model}}``).
        teacher_cfg, teacher_ckpt: the teacher (see :class:`BaseDistiller`).
        loss_decode: loss on the decode-head logits (``loss_dist_decode``).
        loss_aux: loss on the auxiliary-head logits (``loss_dist_aux``), or None.
        **kwargs: the other arguments of :class:`BaseDistiller`.
    """

    def __init__(self, student: dict, teacher_cfg: ConfigSource, teacher_ckpt: Optional[str],
                 loss_decode: dict = dict(type='mmdist.DISTLoss'),
                 loss_aux: Optional[dict] = None, **kwargs) -> None:
        super().__init__(student, teacher_cfg, teacher_ckpt, **kwargs)
        self._check_head_pair('decode_head', 'model.loss_decode')
        self.loss_decode = build_loss(loss_decode, 'model.loss_decode', 'softmax',
                                      'the student decode head')
        self.loss_aux = None
        if loss_aux is not None:
            self._check_head_pair('auxiliary_head', 'model.loss_aux')
            self.loss_aux = build_loss(loss_aux, 'model.loss_aux', 'softmax',
                                       'the student auxiliary head')

    # ----------------------------------------------------------------- build-time checks
    def _check_head_pair(self, attr: str, loss_key: str) -> None:
        heads = []
        for owner, key in ((self.student, f'model.student.{attr}'),
                           (self.teacher, f'teacher_cfg model.{attr}')):
            head = getattr(owner, attr, None)
            if head is None:
                raise ValueError(f'{loss_key}: {key} is missing; both networks need a '
                                 f'{attr} (set {loss_key}=None to distil without it)')
            if isinstance(head, nn.ModuleList):
                raise TypeError(f'{key}: a list of heads ({type(owner).__name__}) is not '
                                'supported; use a single head')
            if not isinstance(getattr(head, 'conv_seg', None), nn.Conv2d):
                raise TypeError(f'{key}: {type(head).__name__} has no `conv_seg` classifier; '
                                'supported heads derive from mmseg BaseDecodeHead')
            if head.out_channels == 1:
                raise ValueError(f'{key}: binary sigmoid heads (out_channels=1) are not '
                                 'supported; DIST compares softmax scores over classes')
            heads.append(head)
        self._check_equal('num_classes', heads[0].num_classes, heads[1].num_classes,
                          f'model.student.{attr}.num_classes')

    # ----------------------------------------------------------------- training
    def teacher_forward(self, inputs: Tensor,
                        data_samples: List) -> Tuple[Tensor, Optional[Tensor]]:
        """The teacher's (N, C, h, w) decode logits and, with ``loss_aux``, aux logits."""
        feats = self.teacher.extract_feat(inputs)
        aux = self.teacher.auxiliary_head(feats) if self.loss_aux is not None else None
        return self.teacher.decode_head(feats), aux

    def student_records(self) -> Dict[str, nn.Module]:
        # mmseg heads call self.forward() directly; their classifier conv_seg is called.
        watched = {'decode': self.student.decode_head.conv_seg}
        if self.loss_aux is not None:
            watched['aux'] = self.student.auxiliary_head.conv_seg
        return watched

    def distill_losses(self, records: Dict[str, Record],
                       teacher_logits: Tuple[Tensor, Optional[Tensor]],
                       data_samples: List) -> Dict[str, Tensor]:
        student_aux = records['aux'].output if self.loss_aux is not None else None
        return self.logit_losses(records['decode'].output, teacher_logits[0], student_aux,
                                 teacher_logits[1], data_samples)

    def distill_loss_names(self) -> List[str]:
        return ['loss_dist_decode'] + (['loss_dist_aux'] if self.loss_aux is not None else [])

    def logit_losses(self, student_decode: Tensor, teacher_decode: Tensor,
                     student_aux: Optional[Tensor], teacher_aux: Optional[Tensor],
                     data_samples: List) -> Dict[str, Tensor]:
        """``loss_dist_decode`` (and ``loss_dist_aux``) from the heads' (N, C, h, w) logits."""
        losses = dict(loss_dist_decode=self._pixel_loss(self.loss_decode, student_decode,
                                                        teacher_decode, data_samples))
        if self.loss_aux is not None:
            losses['loss_dist_aux'] = self._pixel_loss(self.loss_aux, student_aux,
                                                       teacher_aux, data_samples)
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

    def _pixel_loss(self, loss: nn.Module, student_logits: Tensor, teacher_logits: Tensor,
                    data_samples: List) -> Tensor:
        """``loss`` on (pixels, C) rows of (N, C, h, w) logits, ignored pixels weighted 0;
        the teacher's logits resized bilinearly (with the student head's
        ``align_corners``, as mmseg resizes logits for its losses) if their size differs."""
        if teacher_logits.shape[-2:] != student_logits.shape[-2:]:
            teacher_logits = resize(teacher_logits, size=student_logits.shape[-2:],
                                    mode='bilinear',
                                    align_corners=self.student.decode_head.align_corners)
        valid = self._valid_pixels(data_samples, student_logits.shape[-2:])
        return loss(dense_to_rows(student_logits), dense_to_rows(teacher_logits), valid)
