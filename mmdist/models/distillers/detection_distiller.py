# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST for mmdet 3.x detectors: the shared flow; each head family's rules are a unit of
:mod:`mmdist.models.distillers.detection`."""
import inspect
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from mmdist.registry import MODELS
from ..utils.recorder import Record
from ..utils.teacher import ConfigSource
from .base_distiller import BaseDistiller, build_loss
from .detection import DENSE_ROWS, HeadOptions, HungarianQueries, build_unit
from .detection.dense import SCORES
from .feature_mimic import FeatureMimic


@MODELS.register_module()
class DetectionDistiller(BaseDistiller):
    """Distil an mmdet detector into another (``type='mmdist.DetectionDistiller'``).

    The teacher runs first (backbone, neck and what the unit needs of its head); the
    student's own ``loss()`` runs with the modules the unit names recorded; the unit
    compares (``loss_dist_cls``). The unit is chosen by the student's head and the
    options (docs/detection.md has the table of pairs):

    - dense student, dense teacher with the same priors per location at the levels of
      equal stride (RetinaNet, FCOS, ATSS, GFL, RTMDet, YOLOX and subclasses): their
      class logits directly, as rows (``dense_rows``, ``mask_padding``), one term per
      pair of levels; the teacher runs its classification branch only;
    - ``cross_head=True``, any dense pair: the student's class-branch features through
      the teacher's classifier vs the teacher's own logits (cross-head distillation);
    - two-stage students (``StandardRoIHead``): the teacher's (first-stage) box head
      classifies the student's sampled RoIs; softmax DIST of the (R, C+1) logits.
    - DETR-family students and teachers (DETR, Deformable DETR, DINO): per image, the
      student's matching queries are matched to the teacher's by the student's
      Hungarian assigner; DIST of the matched queries' class logits, optional box terms
      (``loss_bbox``, ``loss_iou``; :class:`~mmdist.models.distillers.detection.HungarianQueries`).

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
            With one prior per location both are the same.
        mask_padding: dense heads only. Weight 0 for rows of priors (locations) in the
            batch padding; ``False`` keeps them, as the official code does.
        cross_head: dense heads only. Compare through the teacher's classifier
            (:class:`~mmdist.models.distillers.detection.CrossHead`), for pairs whose heads
            differ in type, priors per location or widths.
        score: heads with a separate objectness output (YOLOX) only: ``'joint'`` (the
            default) compares ``sigmoid(cls) * sigmoid(obj)`` (as its logit), ``'class'``
            the class logits alone.
        query_layers: DETR-family students only. ``'last'``: the student's final decoder
            layer; ``'all'``: every decoder layer, each against the teacher's final layer
            on the same matched queries (``loss_dist_*`` sum the layers' terms).
        loss_bbox, loss_iou: DETR-family students only. ``None`` (no box distillation) or
            an mmdet box loss (e.g. ``dict(type='mmdet.L1Loss', loss_weight=5.0)``,
            ``dict(type='mmdet.GIoULoss', loss_weight=2.0)``) between the matched
            student and teacher boxes, weighted by the teacher's confidence
            (``loss_dist_bbox``, ``loss_dist_iou``).
        **kwargs: the other arguments of :class:`BaseDistiller`.
    """

    def __init__(self, student: dict, teacher_cfg: ConfigSource, teacher_ckpt: Optional[str],
                 loss_cls: dict, mimic: Optional[dict] = None, dense_rows: str = 'anchor',
                 mask_padding: bool = True, cross_head: bool = False,
                 score: Optional[str] = None, query_layers: str = 'last',
                 loss_bbox: Optional[dict] = None, loss_iou: Optional[dict] = None,
                 **kwargs) -> None:
        if dense_rows not in DENSE_ROWS:
            raise ValueError(f'model.dense_rows: expected one of {DENSE_ROWS}, got '
                             f'{dense_rows!r}')
        for key, value in (('mask_padding', mask_padding), ('cross_head', cross_head)):
            if not isinstance(value, bool):
                raise TypeError(f'model.{key}: expected True or False, got {value!r}')
        if score is not None and score not in SCORES:
            raise ValueError(f'model.score: expected one of {SCORES} or None, got {score!r}')
        # Read by _check_pair, which BaseDistiller.__init__ calls.
        self.head_options = HeadOptions(dense_rows, mask_padding, cross_head, score,
                                        query_layers, loss_bbox, loss_iou)
        super().__init__(student, teacher_cfg, teacher_ckpt, **kwargs)
        if not isinstance(self.unit, HungarianQueries) and (query_layers, loss_bbox,
                                                             loss_iou) != ('last', None, None):
            raise ValueError('model.query_layers / model.loss_bbox / model.loss_iou: they set '
                             'how DETR-family queries are distilled; this student has none, '
                             "leave them at their defaults ('last', None, None)")
        self.loss_cls = build_loss(loss_cls, 'model.loss_cls', self.unit.activation,
                                   self.unit.activation_source)
        if self.unit.grouped and 'groups' not in inspect.signature(
                self.loss_cls.forward).parameters:
            raise TypeError(
                f'model.loss_cls: {type(self.loss_cls).__name__}.forward has no `groups` '
                'argument; dense detection passes all FPN levels in one call, as '
                'loss(student_rows, teacher_rows, weight, groups=rows_per_level) (as '
                'mmdist.DISTLoss and mmdist.KDLoss take them)')
        self.mimic = None
        if mimic is not None:
            s_channels, s_levels = self._neck_outputs(self.student, 'model.student.neck')
            t_channels, t_levels = self._neck_outputs(self.teacher, 'teacher_cfg model.neck')
            self._check_equal('FPN levels', s_levels, t_levels, 'model.student.neck.num_outs')
            with torch.random.fork_rng(devices=[]):  # the student's initial weights as alone
                self.mimic = FeatureMimic(s_channels, t_channels, num_levels=s_levels, **mimic)

    def _check_pair(self) -> None:
        # Its own modules (cross-head adapters) must not advance the global RNG either.
        with torch.random.fork_rng(devices=[]):
            self.unit = build_unit(self.student, self.teacher, self.head_options)

    @property
    def detector(self) -> nn.Module:
        """The student; mmdet hooks that reach a wrapped detector through ``.detector``
        (``YOLOXModeSwitchHook``) find the student's head there."""
        return self.student

    @staticmethod
    def _neck_outputs(detector: nn.Module, key: str) -> Tuple[int, int]:
        """(channels, levels) of an FPN-like neck."""
        neck = getattr(detector, 'neck', None)
        if neck is None or not hasattr(neck, 'out_channels') or not hasattr(neck, 'num_outs'):
            raise ValueError(f'model.mimic: {key} must be an FPN-like neck with `out_channels` '
                             'and `num_outs` to mimic')
        return neck.out_channels, neck.num_outs

    # ----------------------------------------------------------------- training
    def teacher_forward(self, inputs: Tensor, data_samples: List) -> Dict[str, Any]:
        """The teacher's FPN features (kept for ``mimic``) and what the unit keeps of its
        head (for dense students its class logits as rows, computed by the head's
        classification branch only: the box regression is not distilled)."""
        feats = self.teacher.extract_feat(inputs)
        return dict(unit=self.unit.teacher_forward(self.teacher, feats, data_samples),
                    feats=feats if self.mimic is not None else None)

    def student_records(self) -> Dict[str, nn.Module]:
        watched = self.unit.student_records(self.student)
        if self.mimic is not None:
            watched['neck'] = self.student.neck
        return watched

    def distill_losses(self, records: Dict[str, Record], teacher: Dict[str, Any],
                       data_samples: List) -> Dict[str, Tensor]:
        losses = self.unit.losses(self.student, self.teacher, records, teacher['unit'],
                                  data_samples, self.loss_cls)
        if self.mimic is not None:
            losses['loss_dist_mimic'] = self.mimic(records['neck'].output, teacher['feats'])
        return losses

    def distill_loss_names(self) -> List[str]:
        return list(self.unit.loss_names) + (['loss_dist_mimic'] if self.mimic is not None else [])
