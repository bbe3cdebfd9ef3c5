# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The study's per-class metrics against per-class values computed directly with numpy."""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmdist.testing._faithfulness import random_seg_case, seg_sample
from projects.faithfulness_study.metrics import PerClassIoUMetric, PerClassSegFaithfulnessMetric


def test_per_class_agreement_is_the_share_of_teacher_pixels_kept():
    metric = PerClassSegFaithfulnessMetric()
    cases = [random_seg_case(seed, num_classes=4) for seed in range(3)]
    # Class 3 never wins in the teacher: its agreement is undefined (NaN).
    for _, teacher, _ in cases:
        teacher[3] = -1e4
    metric.process({}, [seg_sample(*case) for case in cases])
    m = metric.compute_metrics(metric.results)
    k_s, k_t = [], []
    for student, teacher, label in cases:
        keep = label[0] != 255
        k_s.append(student.argmax(0)[keep].numpy())
        k_t.append(teacher.argmax(0)[keep].numpy())
    k_s, k_t = np.concatenate(k_s), np.concatenate(k_t)
    for k in range(3):
        assert m[f'agreement.{k}'] == pytest.approx(np.mean(k_s[k_t == k] == k), rel=1e-12)
    assert math.isnan(m['agreement.3'])
    # The macro average the base metric reports is the mean of the defined ones.
    assert m['agreement_class_macro'] == pytest.approx(
        np.mean([m[f'agreement.{k}'] for k in range(3)]), rel=1e-12)


def test_per_class_iou_is_intersection_over_union():
    g = np.random.default_rng(0)
    pred = g.integers(0, 3, (2, 8, 9))
    label = g.integers(0, 3, (2, 8, 9))
    label[:, 0] = 255  # ignored row
    metric = PerClassIoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd'))  # 'd' never occurs
    samples = []
    for p, y in zip(pred, label):
        sample = SegDataSample()
        sample.pred_sem_seg = PixelData(data=torch.from_numpy(p)[None])
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(y)[None])
        samples.append(sample.to_dict())
    metric.process({}, samples)
    m = metric.compute_metrics(metric.results)
    keep = label != 255
    for k in range(3):
        inter = np.sum((pred == k) & (label == k) & keep)
        union = np.sum(((pred == k) | (label == k)) & keep)
        assert m[f'IoU.{k}'] == pytest.approx(100 * inter / union, rel=1e-12)
    assert math.isnan(m['IoU.3'])
    # mmseg's own (rounded) mIoU is still reported and matches the per-class values.
    assert abs(m['mIoU'] - np.mean([m[f'IoU.{k}'] for k in range(3)])) < 0.006
