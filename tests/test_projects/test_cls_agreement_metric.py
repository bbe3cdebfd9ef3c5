# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""projects/teacher_ladder's ClsAgreementMetric against a hand-made case and scipy."""
import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample
from scipy.stats import entropy

from projects.teacher_ladder.teacher_ladder.metrics import ClsAgreementMetric


def _sample(student, teacher, label):
    sample = DataSample().set_gt_label(label).set_pred_score(torch.tensor(student))
    sample.set_field(torch.tensor(teacher), 'teacher_pred_score')
    return sample.to_dict()


def test_hand_made_case_and_scipy_kl():
    rng = np.random.default_rng(0)
    # (student argmax, teacher argmax, label): agree, agree, disagree, disagree, agree
    cases = [(0, 0, 0), (1, 1, 2), (2, 0, 0), (1, 2, 2), (2, 2, 1)]
    samples, kls = [], []
    for s_arg, t_arg, label in cases:
        student, teacher = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3))
        student[s_arg] += 2  # make the argmax the intended class
        teacher[t_arg] += 2
        student, teacher = student / student.sum(), teacher / teacher.sum()
        samples.append(_sample(student, teacher, label))
        kls.append(entropy(teacher, student))
    metric = ClsAgreementMetric()
    metric.process({}, samples[:2])
    metric.process({}, samples[2:])
    result = metric.compute_metrics(metric.results)
    assert result['agreement'] == pytest.approx(3 / 5)
    # The teacher is right in cases 0, 2, 3; the student agrees with it in case 0 only.
    assert result['agreement_teacher_correct'] == pytest.approx(1 / 3)
    assert result['acc_teacher'] == pytest.approx(3 / 5)
    assert result['acc_student'] == pytest.approx(1 / 5)
    assert result['kl_teacher_student'] == pytest.approx(np.mean(kls), rel=1e-9)


def test_without_the_paired_loop_it_names_the_loop():
    sample = DataSample().set_gt_label(0).set_pred_score(torch.tensor([0.7, 0.3])).to_dict()
    with pytest.raises(KeyError, match='mmdist.PairedTestLoop'):
        ClsAgreementMetric().process({}, [sample])
