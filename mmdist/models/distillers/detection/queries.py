# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DETR-family students and teachers (DETR, Deformable DETR, DINO): query predictions
put in correspondence by Hungarian matching, then distilled.

Decoder queries have no fixed meaning (unlike a dense head's priors), so the teacher's
query i and the student's query i describe different objects. Per image, the student's
final-layer predictions of its matching queries (DINO's denoising queries left out) are
matched one-to-one to the teacher's final-layer predictions by the student's own
Hungarian assigner (``train_cfg.assigner``; for DINO: focal class cost + L1 + GIoU), with
every teacher query as a pseudo ground truth: its argmax class and its box. The matching
runs under ``no_grad``; the student's own matcher, denoising queries and losses are
unchanged.

On the matched pairs ``loss_cls`` compares the (M, C) class logits, all images of the
batch together (``loss_dist_cls``); optional box terms compare the boxes, each pair
weighted by the teacher's confidence (``loss_dist_bbox``: L1 on normalised cxcywh,
``loss_dist_iou``: GIoU on pixel xyxy, as mmdet's DETR losses read boxes).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads import DeformableDETRHead, DETRHead
from mmdet.models.detectors import DETR, DINO, DeformableDETR
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdist.models.utils.recorder import Record
from ..base_distiller import build_component
from .unit import DetectionUnit, HeadOptions, register_unit

#: The detectors whose queries are distilled, and the head forwards whose outputs are
#: read: (L, N, Q, C') class logits and (L, N, Q, 4) normalised cxcywh boxes.
DETECTORS = (DETR, DeformableDETR, DINO)
HEAD_FORWARDS = (DETRHead.forward, DeformableDETRHead.forward)
#: Values of the distiller's ``query_layers``: the student's final decoder layer, or
#: every decoder layer (each against the teacher's final layer).
QUERY_LAYERS = ('last', 'all')


def supported_detectors() -> str:
    return ', '.join(d.__name__ for d in DETECTORS)


def check_detector(model: nn.Module, key: str) -> None:
    """``model`` must be one of :data:`DETECTORS` with a head whose forward is read."""
    head = getattr(model, 'bbox_head', None)
    if type(model) not in DETECTORS or type(head).forward not in HEAD_FORWARDS:
        raise TypeError(f'{key}: query distillation supports the detectors '
                        f'{supported_detectors()} (with their stock heads); got '
                        f'{type(model).__name__} with {type(head).__name__}')


def teacher_confidence(logits: Tensor, sigmoid: bool) -> Tensor:
    """(M,) the teacher's highest class probability per query (background excluded for
    softmax heads) from (M, C') logits."""
    if sigmoid:
        return logits.sigmoid().max(-1).values
    return logits.softmax(-1)[:, :-1].max(-1).values


@register_unit
class HungarianQueries(DetectionUnit):
    """Query-based student and teacher: Hungarian-matched queries compared."""

    grouped = True

    @classmethod
    def applies(cls, student: nn.Module, options: HeadOptions) -> bool:
        return isinstance(getattr(student, 'bbox_head', None), DETRHead)

    @classmethod
    def supports(cls) -> str:
        return f'the query-based detectors {supported_detectors()}'

    def __init__(self, student: nn.Module, teacher: nn.Module, options: HeadOptions) -> None:
        super().__init__()
        check_detector(student, 'model.student')
        check_detector(teacher, 'teacher_cfg model')
        if (options.dense_rows, options.mask_padding, options.score) != ('anchor', True, None):
            raise ValueError('model.dense_rows / model.mask_padding / model.score: they set '
                             'how dense-head logits are compared; a query-based student '
                             'compares matched queries, so leave them at their defaults '
                             '(\'anchor\', True, None)')
        s_head, t_head = student.bbox_head, teacher.bbox_head
        if s_head.num_classes != t_head.num_classes:
            raise ValueError('model.student.bbox_head.num_classes: student and teacher differ '
                             f'in num_classes: student {s_head.num_classes!r} vs teacher '
                             f'{t_head.num_classes!r}')
        if s_head.cls_out_channels != t_head.cls_out_channels:
            raise ValueError(
                'model.student.bbox_head.loss_cls.use_sigmoid: student and teacher differ in '
                f'class channels (use_sigmoid): student {s_head.cls_out_channels!r} vs '
                f'teacher {t_head.cls_out_channels!r}')
        if getattr(s_head, 'assigner', None) is None:
            raise ValueError('model.student.train_cfg.assigner: the student\'s Hungarian '
                             'assigner matches its queries to the teacher\'s; the student '
                             'has none')
        if options.query_layers not in QUERY_LAYERS:
            raise ValueError(f'model.query_layers: expected one of {QUERY_LAYERS}, got '
                             f'{options.query_layers!r}')
        self.sigmoid = bool(s_head.loss_cls.use_sigmoid)
        self.activation = 'sigmoid' if self.sigmoid else 'softmax'
        self.activation_source = 'the student head (model.student.bbox_head.loss_cls)'
        self.all_layers = options.query_layers == 'all'
        #: The student's matching queries are the last ``num_queries`` of its head output
        #: (DINO puts its denoising queries first).
        self.num_queries = student.num_queries
        self.loss_bbox = _build_box_loss(options.loss_bbox, 'model.loss_bbox')
        self.loss_iou = _build_box_loss(options.loss_iou, 'model.loss_iou')
        self.loss_names = ('loss_dist_cls', ) + tuple(
            name for name, loss in (('loss_dist_bbox', self.loss_bbox),
                                    ('loss_dist_iou', self.loss_iou)) if loss is not None)

    def teacher_forward(self, teacher: nn.Module, feats: tuple,
                        data_samples: List) -> Dict[str, Tensor]:
        """The teacher's final decoder layer: (N, Q_t, C') logits, (N, Q_t, 4) boxes."""
        head_inputs = teacher.forward_transformer(feats, data_samples)
        logits, boxes = teacher.bbox_head(**head_inputs)
        return dict(logits=logits[-1], boxes=boxes[-1])

    def student_records(self, student: nn.Module) -> Dict[str, nn.Module]:
        return dict(head=student.bbox_head)

    def student_queries(self, records: Dict[str, Record]) -> Tuple[Tensor, Tensor]:
        """(L, N, Q, C') logits and (L, N, Q, 4) boxes of the student's matching queries,
        from its head's recorded forward."""
        logits, boxes = records['head'].output
        return logits[:, :, -self.num_queries:], boxes[:, :, -self.num_queries:]

    @staticmethod
    def match(assigner, logits: Tensor, boxes: Tensor, teacher_logits: Tensor,
              teacher_boxes: Tensor, img_meta: dict) -> Tuple[Tensor, Tensor]:
        """Student and teacher query indices of the pairs matched in one image.

        Args:
            assigner: the student's ``HungarianAssigner``.
            logits, boxes: (Q_s, C') and (Q_s, 4) student predictions.
            teacher_logits, teacher_boxes: (Q_t, C') and (Q_t, 4) teacher predictions,
                the pseudo ground truth (argmax class, box).
            img_meta: the image's metainfo (``img_shape``: boxes are normalised by it).

        Returns:
            Two (min(Q_s, Q_t),) index tensors, in the student's query order.
        """
        img_h, img_w = img_meta['img_shape'][:2]
        factor = boxes.new_tensor([img_w, img_h, img_w, img_h])
        preds = InstanceData(scores=logits, bboxes=bbox_cxcywh_to_xyxy(boxes) * factor)
        targets = InstanceData(labels=teacher_logits.argmax(-1),
                               bboxes=bbox_cxcywh_to_xyxy(teacher_boxes) * factor)
        assigned = assigner.assign(preds, targets, img_meta=img_meta).gt_inds
        student_index = torch.nonzero(assigned > 0).squeeze(1)
        return student_index, assigned[student_index] - 1

    def losses(self, student: nn.Module, teacher: nn.Module, records: Dict[str, Record],
               teacher_out: Any, data_samples: List, loss_cls: nn.Module) -> Dict[str, Tensor]:
        logits, boxes = self.student_queries(records)  # (L, N, Q, C'), (L, N, Q, 4)
        t_logits, t_boxes = teacher_out['logits'], teacher_out['boxes']
        with torch.no_grad():
            pairs = [self.match(student.bbox_head.assigner, logits[-1, i], boxes[-1, i],
                                t_logits[i], t_boxes[i], sample.metainfo)
                     for i, sample in enumerate(data_samples)]
        layers = range(logits.shape[0]) if self.all_layers else [logits.shape[0] - 1]
        image = torch.cat([torch.full_like(s, i) for i, (s, _) in enumerate(pairs)])
        s_index = torch.cat([s for s, _ in pairs])
        t_index = torch.cat([t for _, t in pairs])
        # Rows: the matched pairs of all images, layer after layer (one group per layer).
        s_logits = torch.cat([logits[layer, image, s_index] for layer in layers])
        t_rows = t_logits[image, t_index]
        losses = dict(loss_dist_cls=loss_cls(s_logits, t_rows.repeat(len(layers), 1),
                                             groups=[len(s_index)] * len(layers)))
        if self.loss_bbox is None and self.loss_iou is None:
            return losses
        s_boxes = torch.cat([boxes[layer, image, s_index] for layer in layers])
        t_box_rows = t_boxes[image, t_index].repeat(len(layers), 1)
        weight = teacher_confidence(t_rows, self.sigmoid)
        # Each layer's term is a weighted mean over its pairs; the layers' terms add up.
        avg_factor = weight.sum()
        weight = weight.repeat(len(layers))
        if self.loss_bbox is not None:
            losses['loss_dist_bbox'] = self.loss_bbox(
                s_boxes, t_box_rows, weight[:, None].expand(-1, 4), avg_factor=avg_factor)
        if self.loss_iou is not None:
            factors = pixel_factors(data_samples, image, s_boxes).repeat(len(layers), 1)
            losses['loss_dist_iou'] = self.loss_iou(
                bbox_cxcywh_to_xyxy(s_boxes) * factors,
                bbox_cxcywh_to_xyxy(t_box_rows) * factors, weight, avg_factor=avg_factor)
        return losses


def pixel_factors(data_samples: Sequence, image: Tensor, like: Tensor) -> Tensor:
    """(M, 4) (w, h, w, h) of each pair's image (``image``: (M,) image indices)."""
    sizes = like.new_tensor([[s.metainfo['img_shape'][1], s.metainfo['img_shape'][0]]
                             for s in data_samples])
    return sizes[image].repeat(1, 2)


def _build_box_loss(cfg: Optional[dict], key: str) -> Optional[nn.Module]:
    if cfg is None:
        return None
    loss = build_component(cfg, key)
    if getattr(loss, 'loss_weight', 0) < 0:
        raise ValueError(f'{key}.loss_weight: expected >= 0, got {loss.loss_weight!r}')
    return loss
