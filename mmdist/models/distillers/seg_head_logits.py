# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Per-pixel class logits of mmseg decode heads: one small unit per head family.

:class:`~mmdist.models.distillers.SegmentationDistiller` compares (N, C, h, w) class
logits of a student head and a teacher head. A unit says which heads it handles, which
module of a student head gives the logits, and how a teacher head's outputs become logits
of a requested size. :func:`head_logits` picks the unit of a head.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads import Mask2FormerHead
from mmseg.models.utils import resize
from mmseg.structures import SegDataSample
from torch import Tensor, nn


class ClassifierLogits:
    """Heads with a ``conv_seg`` classifier (mmseg ``BaseDecodeHead``: PSPHead, ASPPHead,
    FCNHead, SegformerHead, ...): the (N, C, h, w) output of ``conv_seg``, at the head's
    output stride (1/8 for the d8 CNNs, 1/4 for SegFormer).

    As a teacher, its logits are resized bilinearly to the requested size with the
    student head's ``align_corners``: how mmseg resizes logits for its own losses.
    """

    @staticmethod
    def handles(head: nn.Module) -> bool:
        return isinstance(getattr(head, 'conv_seg', None), nn.Conv2d)

    def __init__(self, head: nn.Module, key: str) -> None:
        if head.out_channels == 1:
            raise ValueError(f'{key}: binary sigmoid heads (out_channels=1) are not '
                             'supported; DIST compares softmax scores over classes')
        self.head = head

    def student_module(self, key: str) -> nn.Module:
        """The module whose output is the student's logits (mmseg heads call
        ``self.forward()`` directly, so the classifier is what a hook can see)."""
        return self.head.conv_seg

    def teacher_outputs(self, feats: Sequence[Tensor]) -> Tensor:
        """The (N, C, h, w) logits of the teacher head on backbone (+neck) ``feats``."""
        return self.head(feats)

    def logits(self, outputs: Tensor, size: Tuple[int, int], align_corners: bool) -> Tensor:
        """``outputs`` as (N, C, *size) logits."""
        if tuple(outputs.shape[-2:]) == tuple(size):
            return outputs
        return resize(outputs, size=size, mode='bilinear', align_corners=align_corners)


class Mask2FormerLogits:
    """mmseg's ``Mask2FormerHead``, as a teacher: per-query class scores (N, Q, C+1) and
    mask logits (N, Q, h, w) (1/4 of the input) of its last decoder layer.

    They become a per-pixel semantic map exactly as the head's own ``predict`` builds it:
    the mask logits resized bilinearly (``align_corners=False``) to the requested size,
    then ``S = einsum('bqc,bqhw->bchw', softmax(cls)[..., :-1], sigmoid(masks))``.
    ``S >= 0`` is not normalised over classes; the logits returned are ``log S``, so
    that the loss's softmax gives ``softmax(log S) = S / sum_c S`` - the teacher's per-pixel
    class distribution, whose argmax is mmseg's prediction - with no second softmax over
    probabilities (with a temperature: ``S**(1/tau)`` normalised). Entries of ``S`` that
    underflow to 0 are raised to the smallest normal float (their log stays finite).

    As a student it is refused: its loss matches queries to ground-truth masks
    (Hungarian assignment), so it has no per-pixel classifier whose logits a pixel-wise
    loss could shape.
    """

    @staticmethod
    def handles(head: nn.Module) -> bool:
        return isinstance(head, Mask2FormerHead)

    def __init__(self, head: nn.Module, key: str) -> None:
        self.head = head

    def student_module(self, key: str) -> nn.Module:
        raise TypeError(
            f'{key}: Mask2FormerHead is supported as a teacher only: its loss matches '
            'queries to ground-truth masks (Hungarian assignment), so it has no per-pixel '
            'classifier whose logits DIST could shape; use a student whose head has a '
            '`conv_seg` classifier (mmseg BaseDecodeHead: PSPHead, SegformerHead, ...)')

    def teacher_outputs(self, feats: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """(N, Q, C+1) class scores and (N, Q, h, w) mask logits of the last layer."""
        # Its forward reads nothing of the data samples (mmdet 3.3); predict passes these.
        samples: List[SegDataSample] = [SegDataSample() for _ in range(feats[0].shape[0])]
        all_cls_scores, all_mask_preds = self.head(feats, samples)
        return all_cls_scores[-1], all_mask_preds[-1]

    def logits(self, outputs: Tuple[Tensor, Tensor], size: Tuple[int, int],
               align_corners: bool) -> Tensor:
        """``log S`` (N, C, *size) of the semantic map; ``align_corners`` is unused:
        mmseg's ``predict`` resizes the mask logits with ``align_corners=False``."""
        cls_scores, mask_logits = outputs
        masks = F.interpolate(mask_logits, size=tuple(size), mode='bilinear',
                              align_corners=False)
        semantic = torch.einsum('bqc,bqhw->bchw', F.softmax(cls_scores, dim=-1)[..., :-1],
                                masks.sigmoid())
        return semantic.clamp_min(torch.finfo(semantic.dtype).tiny).log()


#: The head families, most specific first.
HEAD_LOGITS = (Mask2FormerLogits, ClassifierLogits)


def head_logits(head: nn.Module, key: str):
    """The unit of ``head`` (config key ``key`` in messages) from :data:`HEAD_LOGITS`."""
    for unit in HEAD_LOGITS:
        if unit.handles(head):
            return unit(head, key)
    raise TypeError(f'{key}: {type(head).__name__} has no `conv_seg` classifier; supported '
                    'heads derive from mmseg BaseDecodeHead (students and teachers) or are '
                    "mmseg's Mask2FormerHead (teachers)")
