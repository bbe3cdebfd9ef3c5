# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Do student and teacher disagree near examples the teacher gets right?"""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from mmdist.registry import METRICS
from .access import field, pixel_data
from .functional import box_iou, to_numpy
from .streaming import StreamingSumMetric, merge_sums


@METRICS.register_module()
class PerturbationDisagreement(StreamingSumMetric):
    """Student-teacher disagreement on teacher-correct units under input perturbations.

    The perturbed predictions come from ``mmdist.PairedValLoop`` / ``PairedTestLoop``
    with ``perturbation=dict(eps=..., num_draws=..., pgd=...)``: for K random L-inf noise
    draws (and, for a subset, one PGD attack) of the same radius, both networks predict on
    the same perturbed image and the loop attaches ``perturb_<field>`` /
    ``perturb_teacher_<field>`` (lists of K) and ``pgd_<field>`` / ``pgd_teacher_<field>``.

    Units (where the clean teacher is right):
      - segmentation: pixels not labelled ``ignore_index`` where the teacher's clean
        ``pred_sem_seg`` equals the label; a unit's label is the argmax class.
      - detection: ground-truth boxes whose clean *teacher label* is their class, where a
        model's label for a box is the class of its highest-scoring detection with score
        ``>= score_thr`` and IoU ``>= iou_thr`` with the box (background if none).
    A unit disagrees on an input when the student's label differs from the teacher's on
    that same input.

    Reports ``clean_disagreement``, ``noise_disagreement`` (mean over draws),
    ``noise_disagreement_any`` (some draw disagrees), ``pgd_disagreement`` and, on the same
    PGD subset, ``pgd_clean_disagreement``; plus unit counts and the loop's ``eps``.

    Args:
        score_thr: detection score from which a detection labels a box.
        iou_thr: IoU from which a detection labels a box.
        ignore_index: segmentation label left out.
        collect_device, prefix, collect_dir: see mmengine's ``BaseMetric``.
    """

    default_prefix = 'perturb'

    def __init__(self,
                 score_thr: float = 0.5,
                 iou_thr: float = 0.5,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.score_thr = float(score_thr)
        self.iou_thr = float(iou_thr)
        self.ignore_index = ignore_index

    # ----------------------------------------------------------------- unit labels
    def _seg_labels(self, pred) -> np.ndarray:
        return to_numpy(pixel_data(pred)).reshape(-1)

    def _box_labels(self, pred, gt_boxes: np.ndarray) -> np.ndarray:
        """Per ground-truth box, the class of the best detection on it, -1 if none."""
        boxes = to_numpy(field(pred, 'bboxes')).reshape(-1, 4)
        scores = to_numpy(field(pred, 'scores')).reshape(-1)
        labels = to_numpy(field(pred, 'labels')).reshape(-1)
        keep = scores >= self.score_thr
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        out = np.full(len(gt_boxes), -1, dtype=np.int64)
        if len(boxes) == 0 or len(gt_boxes) == 0:
            return out
        covers = box_iou(gt_boxes, boxes) >= self.iou_thr  # (gt, det)
        ranked = np.where(covers, scores[None, :], -np.inf)
        best = ranked.argmax(1)
        hit = covers.any(1)
        out[hit] = labels[best[hit]]
        return out

    # ----------------------------------------------------------------- accumulation
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.add_sample(self.sample_sums(sample))

    def sample_sums(self, sample) -> Dict[str, np.ndarray]:
        if field(sample, 'pred_sem_seg') is not None:
            key = 'pred_sem_seg'
            label = pixel_data(field(sample, 'gt_sem_seg'))
            if label is None:
                return {}
            label = to_numpy(label).reshape(-1)
            valid = label != self.ignore_index

            def labels_of(pred):
                return self._seg_labels(pred)[valid]

            label = label[valid]
        elif field(sample, 'pred_instances') is not None:
            key = 'pred_instances'
            gt = field(sample, 'gt_instances')
            if gt is None:
                return {}
            gt_boxes = to_numpy(field(gt, 'bboxes')).reshape(-1, 4).astype(np.float64)
            label = to_numpy(field(gt, 'labels')).reshape(-1)

            def labels_of(pred):
                return self._box_labels(pred, gt_boxes)
        else:
            raise KeyError(f'{type(self).__name__}: data samples have neither `pred_sem_seg` '
                           'nor `pred_instances`')
        teacher = field(sample, f'teacher_{key}')
        if teacher is None:
            return {}
        teacher_clean = labels_of(teacher)
        units = teacher_clean == label
        num_units = float(units.sum())
        clean = labels_of(field(sample, key))[units] != teacher_clean[units]
        sums = dict(units=np.array([num_units]), clean_disagree=np.array([clean.sum()], float))
        draws_s = field(sample, f'perturb_{key}')
        draws_t = field(sample, f'perturb_teacher_{key}')
        if draws_s is not None and draws_t is not None:
            flips = np.stack([labels_of(s)[units] != labels_of(t)[units]
                              for s, t in zip(draws_s, draws_t)]) if len(draws_s) else \
                np.zeros((0, int(num_units)), bool)
            sums.update(noise_units=np.array([num_units]),
                        noise_unit_draws=np.array([num_units * len(draws_s)]),
                        noise_disagree=np.array([flips.sum()], float),
                        noise_any=np.array([flips.any(0).sum()], float),
                        noise_draws=np.array([len(draws_s)], float),
                        noise_samples=np.array([1.0]))
        pgd_s, pgd_t = field(sample, f'pgd_{key}'), field(sample, f'pgd_teacher_{key}')
        if pgd_s is not None and pgd_t is not None:
            flips = labels_of(pgd_s)[units] != labels_of(pgd_t)[units]
            sums.update(pgd_units=np.array([num_units]),
                        pgd_disagree=np.array([flips.sum()], float),
                        pgd_clean_disagree=np.array([clean.sum()], float))
        return sums

    # ----------------------------------------------------------------- results
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        sums = merge_sums(results)

        def ratio(num: str, den: str) -> float:
            total = sums[den][0]
            return float(sums[num][0] / total) if total else float('nan')

        metrics: Dict[str, float] = {}
        if 'units' in sums:
            metrics['num_units'] = float(sums['units'][0])
            metrics['clean_disagreement'] = ratio('clean_disagree', 'units')
        if 'noise_units' in sums:
            metrics['noise_disagreement'] = ratio('noise_disagree', 'noise_unit_draws')
            metrics['noise_disagreement_any'] = ratio('noise_any', 'noise_units')
            metrics['num_draws'] = float(sums['noise_draws'][0] / sums['noise_samples'][0])
        if 'pgd_units' in sums:
            metrics['pgd_disagreement'] = ratio('pgd_disagree', 'pgd_units')
            metrics['pgd_clean_disagreement'] = ratio('pgd_clean_disagree', 'pgd_units')
            metrics['num_pgd_units'] = float(sums['pgd_units'][0])
        perturbation = self.model_info.get('perturbation') or {}
        if metrics and 'eps' in perturbation:
            metrics['eps'] = float(perturbation['eps'])
        print_log(f'{type(self).__name__}: perturbation {perturbation or "unknown"}; '
                  + (', '.join(f'{k}: {v:.4f}' for k, v in metrics.items()) or
                     'nothing to report (needs teacher predictions and labels)'),
                  logger='current')
        return metrics
