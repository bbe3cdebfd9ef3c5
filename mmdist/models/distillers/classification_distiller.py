# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST for mmpretrain 1.x image classifiers: the head's class logits."""
from typing import Dict, List, Optional

from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.models.heads import ClsHead, MultiLabelClsHead
from torch import Tensor, nn

from mmdist.registry import MODELS
from ..utils.recorder import Record
from ..utils.teacher import ConfigSource
from .base_distiller import BaseDistiller, build_loss


@MODELS.register_module()
class ClassificationDistiller(BaseDistiller):
    """Distil an mmpretrain ``ImageClassifier`` into another
    (``type='mmdist.ClassificationDistiller'``).

    ``loss_cls`` compares the (N, C) class logits of the two heads, rows = images,
    columns = classes. The student's logits are the ones its own ``loss()`` scores
    (``ClsHead.loss`` calls ``self(feats)``; a forward hook on the head reads them); the
    teacher runs backbone, neck and head on the same batch under ``torch.no_grad()``.

    Batch augmentations (Mixup, CutMix from the student's ``train_cfg.augments``) run in
    the student's data preprocessor on normalised images. Both are per-pixel convex
    combinations or copies, so they commute with the per-channel affine map of
    :meth:`teacher_inputs`: the teacher sees exactly the mixed images the student sees,
    in its own normalisation. The mixed soft labels only enter the student's own loss.

    Supported heads: single-label mmpretrain ``ClsHead`` subclasses with a classifier
    (``num_classes``) that keep ``ClsHead.loss`` and ``ClsHead.predict``, i.e. whose
    forward output is the logit matrix the loss scores and whose softmax is the
    prediction: ``LinearClsHead`` (ResNet, MobileNet, Swin, ConvNeXt, ...),
    ``StackedLinearClsHead``, ``VisionTransformerClsHead``, ``DeiTClsHead``,
    ``VigClsHead``. Heads trained with a sigmoid loss (``CrossEntropyLoss(use_sigmoid=
    True)``, e.g. the ResNet strikes back recipes) still predict with softmax and are
    supported. Multi-label heads (``MultiLabelClsHead``: independent sigmoid scores) and
    heads with their own loss/predict (ArcFace, Conformer, EfficientFormer) are not.

    Args:
        student: student classifier config (e.g. ``{{_base_.model}}``).
        teacher_cfg, teacher_ckpt: the teacher (see :class:`BaseDistiller`; the teacher
            config's top-level ``data_preprocessor``, mmpretrain's place for the
            normalisation, is merged into its model as mmengine's Runner does).
        loss_cls: distillation loss on the class logits (``loss_dist_cls``), e.g.
            ``dict(type='mmdist.DISTLoss', tau=1.0)`` or ``dict(type='mmdist.KDLoss',
            tau=4.0)``; its activation must be softmax.
        **kwargs: the other arguments of :class:`BaseDistiller`.
    """

    def __init__(self, student: dict, teacher_cfg: ConfigSource, teacher_ckpt: Optional[str],
                 loss_cls: dict = dict(type='mmdist.DISTLoss'), **kwargs) -> None:
        super().__init__(student, teacher_cfg, teacher_ckpt, **kwargs)
        heads = [
            self._check_classifier(self.student, 'model.student'),
            self._check_classifier(self.teacher, 'teacher_cfg model')
        ]
        self._check_equal('num_classes', heads[0].num_classes, heads[1].num_classes,
                          'model.student.head.num_classes')
        self.loss_cls = build_loss(loss_cls, 'model.loss_cls', 'softmax',
                                   'an mmpretrain single-label head')

    # ----------------------------------------------------------------- build-time checks
    @staticmethod
    def _check_classifier(model: nn.Module, key: str) -> ClsHead:
        """The model's single-label head, or an error naming ``key``."""
        if not isinstance(model, ImageClassifier):
            raise TypeError(f'{key}: {type(model).__name__} is not supported; use an '
                            'mmpretrain ImageClassifier')
        head = model.head
        if head is None:
            raise ValueError(f'{key}.head is None; distillation needs a classification head')
        kind = type(head).__name__
        if isinstance(head, MultiLabelClsHead):
            raise TypeError(f'{key}.head: {kind} is a multi-label head (independent sigmoid '
                            'scores per class); ClassificationDistiller compares softmax '
                            'distributions of single-label heads')
        if not isinstance(head, ClsHead) or not isinstance(getattr(head, 'num_classes', None),
                                                           int):
            raise TypeError(f'{key}.head: {kind} has no linear classifier (num_classes); '
                            'supported heads derive from mmpretrain ClsHead with a classifier, '
                            'e.g. LinearClsHead')
        for method in ('loss', 'predict'):
            if getattr(type(head), method) is not getattr(ClsHead, method):
                raise TypeError(f'{key}.head: {kind} overrides ClsHead.{method}(), so its '
                                'forward output is not the logit matrix it is trained and '
                                'predicts with; this head is not supported')
        return head

    # ----------------------------------------------------------------- training
    def teacher_forward(self, inputs: Tensor, data_samples: List) -> Tensor:
        """(N, C) teacher class logits."""
        return self._logits(self.teacher.head(self.teacher.extract_feat(inputs)),
                            self.teacher.head, 'teacher_cfg model.head')

    def student_records(self) -> Dict[str, nn.Module]:
        return {'logits': self.student.head}

    def distill_losses(self, records: Dict[str, Record], teacher_logits: Tensor,
                       data_samples: List) -> Dict[str, Tensor]:
        """``loss_dist_cls`` of the (N, C) logits the student's own loss scored."""
        if not records['logits'].called:
            raise RuntimeError(f'model.student.head: {type(self.student.head).__name__} was not '
                               'called during the student loss')
        student_logits = self._logits(records['logits'].output, self.student.head,
                                      'model.student.head')
        return dict(loss_dist_cls=self.loss_cls(student_logits, teacher_logits))

    def distill_loss_names(self) -> List[str]:
        return ['loss_dist_cls']

    @staticmethod
    def _logits(output, head: ClsHead, key: str) -> Tensor:
        """Check that a head produced an (N, num_classes) tensor and return it."""
        if not isinstance(output, Tensor) or output.dim() != 2 \
                or output.shape[1] != head.num_classes:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise RuntimeError(f'{key}: {type(head).__name__} returned {shape}, expected '
                               f'(N, {head.num_classes}) class logits')
        return output
