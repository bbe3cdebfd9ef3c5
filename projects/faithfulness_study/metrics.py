# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Per-class variants of the segmentation metrics, for the faithfulness study.

mmseg's ``IoUMetric`` and :class:`~mmdist.SegFaithfulnessMetric` print per-class tables
but return only averages. The study needs the rare classes' numbers as values, so these
subclasses return the same averages plus one key per class, indexed by train id:
``IoU.<k>`` (percent, like mmseg) and ``agreement.<k>`` (fraction, the share of the
teacher's class-k pixels the student also labels k). A class without pixels gets NaN.
"""
from typing import Dict, List

import numpy as np
from mmseg.evaluation import IoUMetric

from mmdist.evaluation.metrics.seg_faithfulness import SegFaithfulnessMetric
from mmdist.evaluation.metrics.streaming import merge_sums
from mmdist.registry import METRICS


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` plus ``IoU.<k>``: the unrounded IoU of class k in percent."""

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = dict(super().compute_metrics(results))
        if not results:
            return metrics
        intersect = sum(r[0] for r in results).double().numpy()
        union = sum(r[1] for r in results).double().numpy()
        for k, (inter, uni) in enumerate(zip(intersect, union)):
            metrics[f'IoU.{k}'] = float(100 * inter / uni) if uni > 0 else float('nan')
        return metrics


@METRICS.register_module()
class PerClassSegFaithfulnessMetric(SegFaithfulnessMetric):
    """:class:`~mmdist.SegFaithfulnessMetric` plus ``agreement.<k>`` per teacher class k
    (the diagonal of the teacher-vs-student confusion matrix over its rows; the classes
    ``agreement_class_macro`` averages)."""

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        sums = merge_sums(results)
        if 'confusion' not in sums:
            return metrics
        confusion = sums['confusion']
        num_classes = int(round(np.sqrt(confusion.size)))
        confusion = confusion.reshape(num_classes, num_classes)  # rows: teacher
        rows = confusion.sum(1)
        for k in range(num_classes):
            metrics[f'agreement.{k}'] = (float(confusion[k, k] / rows[k]) if rows[k] > 0 else
                                         float('nan'))
        return metrics
