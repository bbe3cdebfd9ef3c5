# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST for mmdet 3.x detectors: dense one-stage heads and two-stage RoI heads."""
import inspect
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmdet.models.dense_heads import ATSSHead, FCOSHead, GFLHead, RetinaHead
from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
from torch import Tensor, nn

from mmdist.registry import MODELS
from ..utils.class_branch import classifier_name, dense_class_logits
from ..utils.dense import dense_to_rows
from ..utils.recorder import Record
from ..utils.teacher import ConfigSource
from .base_distiller import BaseDistiller, build_loss
from .feature_mimic import FeatureMimic

#: Dense heads whose forward returns per-level (N, A*C, H, W) class logits first and
#: whose classifier is laid out anchor-major, as mmdet's ``loss_by_feat`` reads it.
SUPPORTED_DENSE_HEADS = (RetinaHead, FCOSHead, ATSSHead, GFLHead)
#: How per-level (N, A*C, H, W) class logits become rows for ``loss_cls``: one row of C
#: scores per prior (``'anchor'``), or one row of A*C scores per location (``'location'``,
#: the official DIST detection code's reshape of the classifier output).
DENSE_ROWS = ('anchor', 'location')


def _names(classes) -> str:
    return ', '.join(cls.__name__ for cls in classes)


@MODELS.register_module()
class DetectionDistiller(BaseDistiller):
    """Distil an mmdet detector into another (``type='mmdist.DetectionDistiller'``).

    Dense one-stage students (RetinaNet, FCOS, ATSS, GFL): ``loss_cls`` compares the
    per-level class logits of student and teacher as rows (``dense_rows``), concatenated
    over the FPN levels; rows in the batch padding get weight 0 (``mask_padding``); one
    term per level (``groups``), summed into ``loss_dist_cls``. The teacher's head runs
    its classification branch only (the stock heads and subclasses that keep their
    ``forward``). With one prior per location (FCOS, ATSS, GFL) both row layouts are the
    same.

    Two-stage students (``StandardRoIHead``, e.g. Faster R-CNN): the teacher's box head
    (the first stage of a cascade) classifies exactly the student's sampled RoIs on the
    teacher's own features; ``loss_cls`` compares the (R, C+1) RoI logits (softmax).

    Optional ``mimic``: MSE between FPN levels through 1x1 conv connectors
    (``loss_dist_mimic``).

    Args:
        student: student detector config (e.g. ``{{_base_.model}}``).
        teacher_cfg, teacher_ckpt: the teacher (see :class:`BaseDistiller`).
        loss_cls: distillation loss on the class logits, e.g.
            ``dict(type='mmdist.DISTLoss', activation='sigmoid')``.
        mimic: ``None`` or kwargs of :class:`FeatureMimic` (e.g. ``dict(loss_weight=1.)``).
        dense_rows: dense heads only. ``'anchor'``: (N*H*W*A, C) rows, one per prior, as
            mmdet's ``loss_by_feat`` reads the logits. ``'location'``: (N*H*W, A*C) rows,
            one per feature-map location with the scores of all its A anchors, as the
            official DIST code (MasKD ``mmrazor/models/losses/dist_kd.py``) reshapes the
            recorded ``retina_cls`` output; the paper's RetinaNet numbers come from it.
        mask_padding: dense heads only. Weight 0 for rows of priors (locations) in the
            batch padding; ``False`` keeps them, as the official code does.
        **kwargs: the other arguments of :class:`BaseDistiller`.
    """

    def __init__(self, student: dict, teacher_cfg: ConfigSource, teacher_ckpt: Optional[str],
                 loss_cls: dict, mimic: Optional[dict] = None, dense_rows: str = 'anchor',
                 mask_padding: bool = True, **kwargs) -> None:
        if dense_rows not in DENSE_ROWS:
            raise ValueError(f'model.dense_rows: expected one of {DENSE_ROWS}, got '
                             f'{dense_rows!r}')
        if not isinstance(mask_padding, bool):
            raise TypeError(f'model.mask_padding: expected True or False, got {mask_padding!r}')
        super().__init__(student, teacher_cfg, teacher_ckpt, **kwargs)
        if self.two_stage and (dense_rows, mask_padding) != ('anchor', True):
            raise ValueError('model.dense_rows / model.mask_padding: they set how dense-head '
                             'logits become rows; a two-stage student compares RoI logits, '
                             'so leave them at their defaults (\'anchor\', True)')
        self.dense_rows, self.mask_padding = dense_rows, mask_padding
        if self.two_stage:
            expected = 'softmax'
            reason = 'the student RoI head (model.student.roi_head.bbox_head.loss_cls)'
        else:
            expected = 'sigmoid' if self.student.bbox_head.use_sigmoid_cls else 'softmax'
            reason = 'the student head (model.student.bbox_head.loss_cls)'
        self.loss_cls = build_loss(loss_cls, 'model.loss_cls', expected, reason)
        if not self.two_stage and 'groups' not in inspect.signature(
                self.loss_cls.forward).parameters:
            raise TypeError(
                f'model.loss_cls: {type(self.loss_cls).__name__}.forward has no `groups` '
                'argument; dense detection passes all FPN levels in one call, as '
                'loss(student_rows, teacher_rows, weight, groups=rows_per_level) (as '
                'mmdist.DISTLoss and mmdist.KDLoss take them)')
        #: The teacher head's classifier conv when its classification branch can run alone.
        self._teacher_classifier = (None if self.two_stage else
                                    classifier_name(self.teacher.bbox_head))
        self._row_weight_cache: Dict[tuple, Optional[Tensor]] = {}
        self.mimic = None
        if mimic is not None:
            s_channels, s_levels = self._neck_outputs(self.student, 'model.student.neck')
            t_channels, t_levels = self._neck_outputs(self.teacher, 'teacher_cfg model.neck')
            self._check_equal('FPN levels', s_levels, t_levels, 'model.student.neck.num_outs')
            self.mimic = FeatureMimic(s_channels, t_channels, num_levels=s_levels, **mimic)

    # ----------------------------------------------------------------- build-time checks
    def _check_pair(self) -> None:
        self.two_stage = self._check_heads()

    def _check_heads(self) -> bool:
        """Validate the student/teacher head pair; True for two-stage (RoI) distillation."""
        student, teacher = self.student, self.teacher
        s_roi = getattr(student, 'roi_head', None)
        s_dense = getattr(student, 'bbox_head', None)
        if s_roi is not None:
            if not isinstance(s_roi, StandardRoIHead):
                raise TypeError(f'model.student.roi_head: {type(s_roi).__name__} is not '
                                'supported; two-stage students need a StandardRoIHead')
            t_roi = getattr(teacher, 'roi_head', None)
            if not isinstance(t_roi, (StandardRoIHead, CascadeRoIHead)):
                kind = type(t_roi).__name__ if t_roi is not None else 'no roi_head'
                raise TypeError('teacher_cfg: a two-stage student needs a teacher with a '
                                f'StandardRoIHead or CascadeRoIHead, got {kind}')
            t_box = t_roi.bbox_head[0] if isinstance(t_roi, CascadeRoIHead) else t_roi.bbox_head
            self._check_equal('num_classes', s_roi.bbox_head.num_classes, t_box.num_classes,
                              'model.student.roi_head.bbox_head.num_classes')
            for name, box in (('model.student.roi_head.bbox_head', s_roi.bbox_head),
                              ('teacher_cfg model.roi_head.bbox_head', t_box)):
                if getattr(box.loss_cls, 'use_sigmoid', False):
                    raise ValueError(f'{name}.loss_cls: RoI distillation compares softmax '
                                     'scores over C+1 classes; sigmoid box heads are not '
                                     'supported')
                if box.custom_cls_channels:
                    raise ValueError(f'{name}.loss_cls: custom class channels are not supported')
            return True
        if not isinstance(s_dense, SUPPORTED_DENSE_HEADS):
            kind = type(s_dense).__name__ if s_dense is not None else 'no bbox_head/roi_head'
            raise TypeError(f'model.student: head {kind} is not supported; supported dense '
                            f'heads: {_names(SUPPORTED_DENSE_HEADS)}, or a StandardRoIHead')
        t_dense = getattr(teacher, 'bbox_head', None)
        if not isinstance(t_dense, SUPPORTED_DENSE_HEADS) or hasattr(teacher, 'roi_head'):
            kind = type(t_dense).__name__ if t_dense is not None else 'no bbox_head'
            raise TypeError(f'teacher_cfg: a {type(s_dense).__name__} student needs a dense '
                            f'teacher head ({_names(SUPPORTED_DENSE_HEADS)}), got {kind}')
        s_gen, t_gen = s_dense.prior_generator, t_dense.prior_generator
        self._check_equal('num_classes', s_dense.num_classes, t_dense.num_classes,
                          'model.student.bbox_head.num_classes')
        self._check_equal('class channels (use_sigmoid)', s_dense.cls_out_channels,
                          t_dense.cls_out_channels, 'model.student.bbox_head.loss_cls.use_sigmoid')
        self._check_equal('number of FPN levels', s_gen.num_levels, t_gen.num_levels,
                          'model.student.bbox_head.prior_generator.strides')
        self._check_equal('strides', [tuple(s) for s in s_gen.strides],
                          [tuple(s) for s in t_gen.strides],
                          'model.student.bbox_head.prior_generator.strides')
        self._check_equal('anchors per location', list(s_gen.num_base_priors),
                          list(t_gen.num_base_priors),
                          'model.student.bbox_head.anchor_generator')
        return False

    @staticmethod
    def _neck_outputs(detector: nn.Module, key: str) -> Tuple[int, int]:
        """(channels, levels) of an FPN-like neck."""
        neck = getattr(detector, 'neck', None)
        if neck is None or not hasattr(neck, 'out_channels') or not hasattr(neck, 'num_outs'):
            raise ValueError(f'model.mimic: {key} must be an FPN-like neck with `out_channels` '
                             'and `num_outs` to mimic')
        return neck.out_channels, neck.num_outs

    # ----------------------------------------------------------------- training
    def teacher_forward(self, inputs: Tensor) -> Dict[str, Any]:
        """The teacher's FPN features (kept for two-stage students or ``mimic``) and, for
        dense students, its class logits as :meth:`_dense_rows`. A dense teacher runs
        only its head's classification branch when the head allows it
        (:func:`classifier_name`): the box regression is not distilled."""
        feats = self.teacher.extract_feat(inputs)
        if self.two_stage:  # its RoI head classifies the student's RoIs later
            return dict(feats=feats)
        rows = self._dense_rows(dense_class_logits(self.teacher.bbox_head, feats,
                                                   self._teacher_classifier))
        return dict(rows=rows, feats=feats if self.mimic is not None else None)

    def student_records(self) -> Dict[str, nn.Module]:
        student = self.student
        watched = {'neck': student.neck} if self.mimic is not None else {}
        if self.two_stage:
            watched['rois'] = student.roi_head.bbox_roi_extractor
            watched['logits'] = student.roi_head.bbox_head
        else:
            watched['logits'] = student.bbox_head
        return watched

    def distill_losses(self, records: Dict[str, Record], teacher: Dict[str, Any],
                       data_samples: List) -> Dict[str, Tensor]:
        student_logits = records['logits'].output[0]
        if self.two_stage:  # the teacher classifies the student's sampled RoIs
            with torch.no_grad():
                teacher_logits = self.roi_class_logits(self.teacher.roi_head, teacher['feats'],
                                                       records['rois'].args[1])
            losses = dict(loss_dist_cls=self.loss_cls(student_logits, teacher_logits))
        else:
            losses = dict(loss_dist_cls=self._dense_loss(student_logits, teacher['rows'],
                                                         data_samples))
        if self.mimic is not None:
            losses['loss_dist_mimic'] = self.mimic(records['neck'].output, teacher['feats'])
        return losses

    @staticmethod
    def roi_class_logits(roi_head: nn.Module, feats: Tuple[Tensor], rois: Tensor) -> Tensor:
        """(R, C+1) class logits of ``roi_head`` (its first stage for a cascade) for the
        (R, 5) ``rois`` on the FPN ``feats``; the teacher's for the student's sampled RoIs."""
        if isinstance(roi_head, CascadeRoIHead):
            return roi_head._bbox_forward(0, feats, rois)['cls_score']
        return roi_head._bbox_forward(feats, rois)['cls_score']

    def _priors_per_row(self) -> List[int]:
        """Per level, the priors that share one row: 1 for ``dense_rows='anchor'``, the
        anchors per location for ``'location'``."""
        anchors = self.student.bbox_head.prior_generator.num_base_priors
        return [1] * len(anchors) if self.dense_rows == 'anchor' else list(anchors)

    def _dense_rows(self, maps: List[Tensor]) -> Tensor:
        """(rows of all levels, C or A*C) rows (``dense_rows``) of the per-level
        (N, A*C, H, W) class logits, levels in order; rows ordered (n, h, w[, a])."""
        anchors = self.student.bbox_head.prior_generator.num_base_priors
        return torch.cat([dense_to_rows(m, a // k)
                          for m, a, k in zip(maps, anchors, self._priors_per_row())])

    def _dense_loss(self, student_logits: List[Tensor], teacher_rows: Tensor,
                    data_samples: List) -> Tensor:
        """``loss_cls`` of the student's per-level (N, A*C, H, W) class logits against
        the teacher's :meth:`_dense_rows`: one row group per FPN level, rows in the
        batch padding weighted 0 with ``mask_padding``."""
        anchors = self.student.bbox_head.prior_generator.num_base_priors
        sizes = [m.shape[0] * m.shape[2] * m.shape[3] * a // k
                 for m, a, k in zip(student_logits, anchors, self._priors_per_row())]
        weight = None
        if self.mask_padding:
            weight = self._dense_row_weight([logits.shape[-2:] for logits in student_logits],
                                            data_samples, student_logits[0].device)
        return self.loss_cls(self._dense_rows(student_logits), teacher_rows, weight,
                             groups=sizes)

    def _dense_row_weight(self, featmap_sizes: List[torch.Size], data_samples: List,
                          device: torch.device) -> Optional[Tensor]:
        """(rows of all levels,) 0/1 weights, 0 for rows in the batch padding; ``None``
        when no row is in the padding. Cached per feature-map and image shapes (a
        training run sees few distinct ones)."""
        key = (tuple(tuple(size) for size in featmap_sizes),
               tuple(tuple(sample.img_shape[:2]) for sample in data_samples), str(device))
        if key not in self._row_weight_cache:
            generator = self.student.bbox_head.prior_generator
            # valid_flags() per image: (H*W*A,) per level, False for priors in the padding
            # (all A priors of a location alike); one flag per row of the layout.
            per_image = [generator.valid_flags(featmap_sizes, sample.img_shape[:2], device)
                         for sample in data_samples]
            flags = torch.cat([flags[level][::step]
                               for level, step in enumerate(self._priors_per_row())
                               for flags in per_image])
            if len(self._row_weight_cache) >= 64:  # bounded (multi-scale training)
                self._row_weight_cache.clear()
            self._row_weight_cache[key] = None if bool(flags.all()) else flags.float()
        return self._row_weight_cache[key]
