# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""SegFaithfulnessMetric against hand-computed values, torchmetrics and mmseg's IoU code."""
import math

import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric
from torchmetrics.classification import MulticlassCalibrationError

from mmdist.evaluation import SegFaithfulnessMetric
from mmdist.testing._faithfulness import random_seg_case as random_case
from mmdist.testing._faithfulness import seg_sample as sample


def evaluate(metric, samples):
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def logits_of(probs):
    """(P, C) probabilities -> (C, 1, P) logits whose softmax is ``probs``."""
    return torch.tensor(probs, dtype=torch.float32).log().T.reshape(len(probs[0]), 1, -1)


def test_hand_computed_case():
    # 4 pixels, 3 classes; the last pixel is ignored. No confidence lies on a bin edge
    # (multiples of 1/15).
    student = logits_of([[.7, .22, .08], [.18, .5, .32], [.1, .15, .75], [.6, .3, .1]])
    teacher = logits_of([[.9, .05, .05], [.1, .2, .7], [.3, .45, .25], [.1, .1, .8]])
    label = torch.tensor([[[0, 2, 2, 255]]])
    m = evaluate(SegFaithfulnessMetric(), [sample(student, teacher, label)])
    # student: px0 class 0 (right, .7), px1 class 1 (wrong, .5), px2 class 2 (right, .75)
    # teacher: px0 class 0 (right, .9), px1 class 2 (right, .7), px2 class 1 (wrong, .45)
    expected = dict(
        acc_student=2 / 3, acc_teacher=2 / 3,
        ece_student=(.3 + .5 + .25) / 3, ece_teacher=(.1 + .3 + .45) / 3,
        # per label class: class 0 {px0}, class 2 {px1, px2}
        cb_ece_student=(.3 + (.5 + .25) / 2) / 2, cb_ece_teacher=(.1 + (.3 + .45) / 2) / 2,
        oe_student=(.5 * .5) / 3, oe_teacher=(.45 * .45) / 3,
        agreement=1 / 3, agreement_teacher_correct=1 / 2,
        # rows = teacher class: class 0 -> 1/1 agree, class 1 -> 0/1, class 2 -> 0/1
        agreement_class_macro=1 / 3, agreement_mIoU=1 / 3,
        teacher_conf_gap=((.9 - .7) + (.7 - .32) + (.45 - .15)) / 3,
        rel_ece=(abs(1 - .7) + .5 + .75) / 3,
        # per class, every pixel in its own bin: sum |p_t[k] - p_s[k]| / (3 classes * 3 px)
        rel_cw_ece=((.2 + .08 + .2) + (.17 + .3 + .3) + (.03 + .38 + .5)) / 9,
    )
    expected['ece_diff'] = expected['ece_student'] - expected['ece_teacher']
    p_s = np.array([[.7, .22, .08], [.18, .5, .32], [.1, .15, .75]])
    p_t = np.array([[.9, .05, .05], [.1, .2, .7], [.3, .45, .25]])
    expected['kl_teacher_student'] = float((p_t * np.log(p_t / p_s)).sum(1).mean())
    assert set(m) == set(expected)
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-5), key


def tm_ece(probs, target, num_classes):
    metric = MulticlassCalibrationError(num_classes=num_classes, n_bins=15, norm='l1')
    return float(metric(probs, target))


def test_against_torchmetrics_and_mmseg():
    num_classes = 5
    cases = [random_case(seed, num_classes) for seed in range(3)]
    # small chunks: accumulation over chunks and images must not change anything
    m = evaluate(SegFaithfulnessMetric(chunk_size=97), [sample(*case) for case in cases])

    p_s = torch.cat([c[0].reshape(num_classes, -1).T.softmax(1) for c in cases])
    p_t = torch.cat([c[1].reshape(num_classes, -1).T.softmax(1) for c in cases])
    label = torch.cat([c[2].reshape(-1) for c in cases])
    valid = label != 255
    p_s, p_t, label = p_s[valid], p_t[valid], label[valid]
    k_s, k_t = p_s.argmax(1), p_t.argmax(1)

    assert m['ece_student'] == pytest.approx(tm_ece(p_s, label, num_classes), abs=1e-6)
    assert m['ece_teacher'] == pytest.approx(tm_ece(p_t, label, num_classes), abs=1e-6)
    # relative calibration = ECE of the student's probabilities with the teacher's labels
    assert m['rel_ece'] == pytest.approx(tm_ece(p_s, k_t, num_classes), abs=1e-6)
    for name, probs in (('student', p_s), ('teacher', p_t)):
        per_class = [tm_ece(probs[label == c], label[label == c], num_classes)
                     for c in range(num_classes) if (label == c).any()]
        assert m[f'cb_ece_{name}'] == pytest.approx(np.mean(per_class), abs=1e-6)

    # agreement-mIoU: mmseg's own IoU code with the teacher's map as the ground truth
    inter, union, _, area_teacher = IoUMetric.intersect_and_union(k_s, k_t, num_classes, 255)
    assert m['agreement_mIoU'] == pytest.approx(float(np.nanmean(inter / union)), abs=1e-6)
    assert m['agreement_class_macro'] == pytest.approx(
        float(np.nanmean(inter / area_teacher)), abs=1e-6)
    assert m['agreement'] == pytest.approx(float((k_s == k_t).double().mean()), abs=1e-9)
    right = k_t == label
    assert m['agreement_teacher_correct'] == pytest.approx(
        float((k_s == k_t)[right].double().mean()), abs=1e-9)
    kl = torch.nn.functional.kl_div(p_s.log(), p_t, reduction='batchmean')
    assert m['kl_teacher_student'] == pytest.approx(float(kl), rel=1e-4)
    gap = (p_t.gather(1, k_t[:, None]) - p_s.gather(1, k_t[:, None])).mean()
    assert m['teacher_conf_gap'] == pytest.approx(float(gap), abs=1e-6)
    assert m['acc_student'] == pytest.approx(float((k_s == label).double().mean()), abs=1e-9)

    # class-wise relative calibration, by an explicit loop over classes and bins
    bins = torch.bucketize(p_s, torch.linspace(0, 1, 16), right=True) - 1
    total = 0.0
    for c in range(num_classes):
        for b in range(16):
            sel = bins[:, c] == b
            total += abs(float(p_t[sel, c].double().sum() - p_s[sel, c].double().sum()))
    assert m['rel_cw_ece'] == pytest.approx(total / (num_classes * len(label)), abs=1e-6)

    # overconfidence error, per bin of the student's confidence
    conf = p_s.max(1).values
    bins = torch.bucketize(conf, torch.linspace(0, 1, 16), right=True) - 1
    oe = 0.0
    for b in range(16):
        sel = bins == b
        if sel.any():
            c_b, a_b = conf[sel].double().mean(), (k_s == label)[sel].double().mean()
            oe += float(sel.sum()) / len(conf) * float(c_b) * max(float(c_b - a_b), 0.0)
    assert m['oe_student'] == pytest.approx(oe, abs=1e-6)


def test_identical_teacher_and_student():
    student, _, label = random_case(7)
    m = evaluate(SegFaithfulnessMetric(), [sample(student, student.clone(), label)])
    assert m['agreement'] == 1.0 and m['agreement_teacher_correct'] == 1.0
    assert m['agreement_mIoU'] == 1.0 and m['agreement_class_macro'] == 1.0
    assert m['ece_diff'] == 0.0 and m['cb_ece_student'] == m['cb_ece_teacher']
    assert m['kl_teacher_student'] == pytest.approx(0.0, abs=1e-7)
    assert m['teacher_conf_gap'] == 0.0 and m['rel_cw_ece'] == 0.0
    # always agreeing: relative ECE is the mean distance of the confidence from 1
    probs = student.reshape(student.shape[0], -1).T.softmax(1)[label.reshape(-1) != 255]
    assert m['rel_ece'] == pytest.approx(float(1 - probs.max(1).values.mean()), abs=1e-6)
    assert m['ece_student'] > 0.0  # a real calibration error, unlike the differences


def test_without_teacher_reports_calibration_only():
    student, _, label = random_case(3)
    m = evaluate(SegFaithfulnessMetric(), [sample(student, label=label)])
    assert set(m) == {'acc_student', 'ece_student', 'cb_ece_student', 'oe_student'}
    probs = student.reshape(5, -1).T.softmax(1)
    valid = label.reshape(-1) != 255
    assert m['ece_student'] == pytest.approx(
        tm_ece(probs[valid], label.reshape(-1)[valid], 5), abs=1e-6)


def test_without_labels_reports_teacher_relative_only():
    student, teacher, _ = random_case(4)
    m = evaluate(SegFaithfulnessMetric(), [sample(student, teacher)])
    assert 'ece_student' not in m and 'agreement_teacher_correct' not in m
    assert 0 < m['agreement'] < 1 and math.isfinite(m['rel_ece'])


def test_bad_inputs_are_named():
    student, teacher, label = random_case(5)
    metric = SegFaithfulnessMetric()
    with pytest.raises(ValueError, match='differ in shape'):
        metric.process({}, [sample(student, teacher[:, :10], label)])
    with pytest.raises(ValueError, match='outside 0..4'):
        metric.process({}, [sample(student, teacher, torch.full_like(label, 7))])
    with pytest.raises(KeyError, match='seg_logits'):
        metric.process({}, [dict(pred_sem_seg=dict(data=label))])
