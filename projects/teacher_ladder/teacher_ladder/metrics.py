# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Teacher-student agreement of image classifiers, under ``mmdist.PairedTestLoop``.

mmdist's faithfulness metrics (``mmdist.SegFaithfulnessMetric``,
``mmdist.DetFaithfulnessMetric``) cover segmentors and detectors; this is their
classification counterpart for the study, with the same definitions per image instead
of per pixel (docs/faithfulness.md). The paired loop attaches the teacher's own
``predict`` output to every mmpretrain ``DataSample`` as ``teacher_pred_score`` (softmax,
shape (C,)) and ``teacher_pred_label``; the student's are ``pred_score`` / ``pred_label``.

Keys (prefix ``faith/``; fractions in [0, 1], KL in nats per image):

* ``agreement``: mean ``[k_s = k_t]`` (top-1 agreement);
* ``agreement_teacher_correct``: ``sum [k_s = k_t and k_t = y] / sum [k_t = y]``;
* ``kl_teacher_student``: mean ``sum_k p_t[k] (log p_t[k] - log p_s[k])``;
* ``acc_student``, ``acc_teacher``: top-1 accuracy of each network.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from mmdist.registry import METRICS

#: Probabilities are clamped to this before the logarithm (softmax never gives exact 0
#: in float64 for these logits, but float32 scores can underflow).
EPS = 1e-12


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


@METRICS.register_module()
class ClsAgreementMetric(BaseMetric):
    """Top-1 agreement, agreement where the teacher is right, and KL(teacher || student).

    Registered as ``mmdist.ClsAgreementMetric`` once this module is imported (the study's
    configs list it in ``custom_imports``). Needs ``mmdist.PairedTestLoop``: a sample
    without ``teacher_pred_score`` raises an error naming the loop.
    """

    default_prefix = 'faith'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'teacher_pred_score' not in sample:
                raise KeyError('ClsAgreementMetric needs the teacher\'s predictions '
                               '(teacher_pred_score): evaluate a distiller with '
                               "test_cfg=dict(type='mmdist.PairedTestLoop')")
            student = _to_numpy(sample['pred_score'])
            teacher = _to_numpy(sample['teacher_pred_score'])
            label = int(_to_numpy(sample['gt_label']).reshape(-1)[0])
            log_ratio = np.log(np.maximum(teacher, EPS)) - np.log(np.maximum(student, EPS))
            self.results.append(
                dict(student=int(student.argmax()), teacher=int(teacher.argmax()),
                     label=label, kl=float((teacher * log_ratio).sum())))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        student = np.array([r['student'] for r in results])
        teacher = np.array([r['teacher'] for r in results])
        label = np.array([r['label'] for r in results])
        teacher_right = teacher == label
        agree = student == teacher
        return dict(
            agreement=float(agree.mean()),
            agreement_teacher_correct=(float((agree & teacher_right).sum() /
                                             teacher_right.sum())
                                       if teacher_right.any() else float('nan')),
            kl_teacher_student=float(np.mean([r['kl'] for r in results])),
            acc_student=float((student == label).mean()),
            acc_teacher=float(teacher_right.mean()))
