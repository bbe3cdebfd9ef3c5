# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Faithfulness of a detection student to its teacher, and detection calibration (D-ECE)."""
import json
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log

from mmdist.registry import METRICS
from .access import field
from .functional import average_precision, bin_index, box_iou, calibration_error, greedy_match
from .functional import to_numpy
from .streaming import StreamingSumMetric, merge_sums


def _instances(obj) -> Optional[Dict[str, np.ndarray]]:
    """bboxes (n, 4), scores (n,), labels (n,) of an InstanceData (dict or element)."""
    if obj is None:
        return None
    boxes = to_numpy(field(obj, 'bboxes'))
    if boxes is None:
        return None
    boxes = boxes.reshape(-1, 4).astype(np.float64)
    labels = to_numpy(field(obj, 'labels'))
    labels = np.zeros(len(boxes), np.int64) if labels is None else labels.astype(np.int64)
    scores = to_numpy(field(obj, 'scores'))
    scores = np.ones(len(boxes)) if scores is None else scores.astype(np.float64)
    return dict(bboxes=boxes, scores=scores, labels=labels)


def _describe(cfg) -> str:
    if cfg is None:
        return 'unknown (only mmdist.PairedValLoop / PairedTestLoop report it)'
    try:
        return json.dumps(cfg, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(cfg)


@METRICS.register_module()
class DetFaithfulnessMetric(StreamingSumMetric):
    """Fidelity of the student to the teacher's detections, and D-ECE of both.

    Reads ``pred_instances`` (student), ``teacher_pred_instances`` (attached by the paired
    loops), ``gt_instances`` and ``ignored_instances``. Boxes must share a coordinate frame:
    mmdet rescales predictions to the original image, and its stock test pipelines load
    annotations after ``Resize``, so ground truth is in the original frame too.

    - Fidelity: teacher detections with score ``>= pseudo_score_thr`` are pseudo ground
      truth; the student's detections (all of them, ranked by score) are matched
      COCO-style (class-aware, IoU ``>= iou_thr``). Reports AP (COCO 101-point), recall and
      precision of the student's detections with score ``>= pseudo_score_thr``, and the
      mean confidence gap ``teacher score - student score`` over matched pairs.
    - D-ECE (Kueppers et al. 2020, confidence only): detections with score
      ``>= calib_score_thr`` matched to the real ground truth; per score bin, precision vs
      mean score. Reported for the student always, for the teacher when present.

    Without a teacher only D-ECE of the student is reported. The score thresholds and the
    models' ``test_cfg`` (known under the paired loops) are logged with the numbers.

    Args:
        pseudo_score_thr: teacher score from which a detection is pseudo ground truth.
        calib_score_thr: score from which detections enter D-ECE.
        iou_thr: matching IoU (0.5).
        num_bins: D-ECE confidence bins (15).
        ap_bins: score histogram bins of the fidelity AP (streaming; ties within a bin).
        collect_device, prefix, collect_dir: see mmengine's ``BaseMetric``.
    """

    default_prefix = 'faith'

    def __init__(self,
                 pseudo_score_thr: float = 0.5,
                 calib_score_thr: float = 0.3,
                 iou_thr: float = 0.5,
                 num_bins: int = 15,
                 ap_bins: int = 1000,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.pseudo_score_thr = float(pseudo_score_thr)
        self.calib_score_thr = float(calib_score_thr)
        self.iou_thr = float(iou_thr)
        self.num_bins = num_bins
        self.ap_bins = ap_bins

    def _num_classes(self) -> int:
        classes = (self.dataset_meta or {}).get('classes')
        if not classes:
            raise ValueError(f'{type(self).__name__}: dataset_meta has no `classes`; the '
                             'evaluator sets it from the dataset\'s metainfo')
        return len(classes)

    # ----------------------------------------------------------------- accumulation
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            student = _instances(field(sample, 'pred_instances'))
            if student is None:
                raise KeyError(f'{type(self).__name__}: data samples have no `pred_instances`; '
                               'it needs the predictions of an mmdet detector')
            self.add_sample(self.sample_sums(
                student, _instances(field(sample, 'teacher_pred_instances')),
                _instances(field(sample, 'gt_instances')),
                _instances(field(sample, 'ignored_instances'))))

    def sample_sums(self, student: Dict[str, np.ndarray], teacher: Optional[Dict],
                    gt: Optional[Dict], ignored: Optional[Dict] = None) -> Dict[str, np.ndarray]:
        num_classes = self._num_classes()
        sums: Dict[str, np.ndarray] = {}
        if teacher is not None:
            keep = teacher['scores'] >= self.pseudo_score_thr
            pseudo = {key: value[keep] for key, value in teacher.items()}
            match = greedy_match(student['bboxes'], student['scores'], student['labels'],
                                 pseudo['bboxes'], pseudo['labels'], self.iou_thr)
            tp = match >= 0
            score_bin = np.clip(np.floor(student['scores'] * self.ap_bins), 0,
                                self.ap_bins - 1).astype(np.int64)
            index = student['labels'] * self.ap_bins + score_bin
            size = num_classes * self.ap_bins
            sums['fid_tp'] = np.bincount(index, weights=tp.astype(np.float64), minlength=size)
            sums['fid_fp'] = np.bincount(index, weights=(~tp).astype(np.float64),
                                         minlength=size)
            sums['fid_pos'] = np.bincount(pseudo['labels'], minlength=num_classes).astype(
                np.float64)
            above = student['scores'] >= self.pseudo_score_thr
            sums['fid_det_thr'] = np.array([above.sum()], np.float64)
            # Per class: matched pseudo boxes (a match has the pseudo box's class).
            sums['fid_tp_thr'] = np.bincount(student['labels'][tp & above],
                                             minlength=num_classes).astype(np.float64)
            sums['gap_sum'] = np.array(
                [(pseudo['scores'][match[tp]] - student['scores'][tp]).sum()])
            sums['gap_count'] = np.array([tp.sum()], np.float64)
        if gt is not None:
            for name, dets in (('student', student), ('teacher', teacher)):
                if dets is not None:
                    sums.update(self._dece_sums(name, dets, gt, ignored, num_classes))
        return sums

    def _dece_sums(self, name: str, dets: Dict, gt: Dict, ignored: Optional[Dict],
                   num_classes: int) -> Dict[str, np.ndarray]:
        """(classes * (num_bins + 1),) count, confidence and hit sums per predicted class
        and score bin; the pooled D-ECE adds them up over classes."""
        keep = dets['scores'] >= self.calib_score_thr
        boxes, scores, labels = (dets[key][keep] for key in ('bboxes', 'scores', 'labels'))
        tp = greedy_match(boxes, scores, labels, gt['bboxes'], gt['labels'], self.iou_thr) >= 0
        if ignored is not None and len(ignored['bboxes']) and len(boxes):
            # False positives on crowd / ignored regions are left out, as COCO does.
            on_ignored = box_iou(boxes, ignored['bboxes'], mode='iof').max(1) >= self.iou_thr
            counted = tp | ~on_ignored
            scores, tp, labels = scores[counted], tp[counted], labels[counted]
        bins = self.num_bins + 1
        index = labels * bins + bin_index(torch.from_numpy(scores), self.num_bins).numpy()
        size = num_classes * bins
        return {
            f'dece_{name}_count': np.bincount(index, minlength=size).astype(np.float64),
            f'dece_{name}_conf': np.bincount(index, weights=scores, minlength=size),
            f'dece_{name}_hit': np.bincount(index, weights=tp.astype(np.float64),
                                            minlength=size),
        }

    # ----------------------------------------------------------------- results
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        sums = merge_sums(results)
        metrics: Dict[str, float] = {}
        if 'fid_tp' in sums:
            num_pos = sums['fid_pos']
            shape = (len(num_pos), self.ap_bins)
            metrics['fidelity_AP50'], _ = average_precision(
                sums['fid_tp'].reshape(shape), sums['fid_fp'].reshape(shape), num_pos)
            total_pos, det_thr = num_pos.sum(), sums['fid_det_thr'][0]
            tp_thr = sums['fid_tp_thr'].sum()
            metrics['fidelity_recall'] = float(tp_thr / total_pos) if total_pos else float('nan')
            with np.errstate(invalid='ignore', divide='ignore'):
                per_class = np.where(num_pos > 0, sums['fid_tp_thr'] / num_pos, np.nan)
            for k, value in enumerate(per_class):
                metrics[f'fidelity_recall.{k}'] = float(value)
            metrics['fidelity_recall_class_macro'] = float(np.nanmean(per_class)) if (
                num_pos > 0).any() else float('nan')
            metrics['fidelity_precision'] = float(tp_thr / det_thr) if det_thr else float('nan')
            count = sums['gap_count'][0]
            metrics['matched_conf_gap'] = float(sums['gap_sum'][0] / count) if count else \
                float('nan')
            metrics['num_pseudo_boxes'] = float(total_pos)
        for name in ('student', 'teacher'):
            if f'dece_{name}_count' in sums:
                per_class = [sums[f'dece_{name}_{key}'].reshape(-1, self.num_bins + 1)
                             for key in ('count', 'conf', 'hit')]  # (classes, bins) each
                metrics[f'dece_{name}'] = calibration_error(*(s.sum(0) for s in per_class))
                # Class-balanced: the mean D-ECE of the classes with counted detections.
                errors = [calibration_error(*(s[k] for s in per_class))
                          for k in range(per_class[0].shape[0]) if per_class[0][k].sum()]
                metrics[f'cb_dece_{name}'] = float(np.mean(errors)) if errors else float('nan')
        if 'dece_student' in metrics and 'dece_teacher' in metrics:
            metrics['dece_diff'] = metrics['dece_student'] - metrics['dece_teacher']
        if metrics:
            if 'fidelity_AP50' in metrics:
                metrics['pseudo_score_thr'] = self.pseudo_score_thr
            if any(key.startswith('dece_') for key in metrics):
                metrics['calib_score_thr'] = self.calib_score_thr
        self._log(metrics)
        return metrics

    def _log(self, metrics: Dict[str, float]) -> None:
        info = self.model_info
        lines = [
            f'{type(self).__name__}: pseudo ground truth = teacher detections with score >= '
            f'{self.pseudo_score_thr}; D-ECE on detections with score >= '
            f'{self.calib_score_thr}, {self.num_bins} bins; matching IoU >= {self.iou_thr}, '
            'class-aware',
            f'  student test_cfg: {_describe(info.get("student_test_cfg"))}',
            f'  teacher test_cfg: {_describe(info.get("teacher_test_cfg"))}'
            if 'fidelity_AP50' in metrics or 'teacher_test_cfg' in info else
            '  teacher: none (plain loop: student D-ECE only)',
            '  ' + ', '.join(f'{key}: {value:.4f}' for key, value in metrics.items()),
        ]
        print_log('\n'.join(lines), logger='current')
