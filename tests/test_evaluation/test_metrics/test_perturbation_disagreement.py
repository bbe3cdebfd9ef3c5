# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""PerturbationDisagreement on hand-computed segmentation and detection cases."""
import pytest
import torch

from mmdist.evaluation import PerturbationDisagreement


def seg(labels):
    return dict(data=torch.tensor([labels]))


def evaluate(metric, samples):
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_segmentation_units_and_draws():
    metric = PerturbationDisagreement()
    metric.set_model_info(dict(perturbation=dict(eps=4.0, num_draws=2)))
    sample = dict(
        gt_sem_seg=seg([[0, 1, 2, 0, 255, 1]]),
        # teacher right at pixels 0, 1, 3 (pixel 4 is ignored): the units
        teacher_pred_sem_seg=seg([[0, 1, 0, 0, 1, 2]]),
        pred_sem_seg=seg([[0, 2, 0, 1, 1, 1]]),  # disagrees at units 1 and 3
        perturb_pred_sem_seg=[seg([[0, 1, 2, 0, 0, 0]]), seg([[1, 1, 0, 0, 0, 0]])],
        perturb_teacher_pred_sem_seg=[seg([[0, 1, 2, 1, 0, 0]]), seg([[0, 1, 0, 0, 0, 0]])],
        pgd_pred_sem_seg=seg([[1, 0, 0, 0, 0, 0]]),
        pgd_teacher_pred_sem_seg=seg([[1, 1, 1, 1, 1, 1]]),
    )
    m = evaluate(metric, [sample])
    assert m == pytest.approx(dict(
        num_units=3, clean_disagreement=2 / 3,
        noise_disagreement=2 / 6,        # draw 1: unit 3; draw 2: unit 0
        noise_disagreement_any=2 / 3, num_draws=2,
        pgd_disagreement=2 / 3, pgd_clean_disagreement=2 / 3, num_pgd_units=3, eps=4.0))


def boxes(rows):
    return dict(bboxes=torch.tensor([r[:4] for r in rows], dtype=torch.float32).reshape(-1, 4),
                scores=torch.tensor([r[4] for r in rows], dtype=torch.float32),
                labels=torch.tensor([r[5] for r in rows], dtype=torch.int64))


def test_detection_units_are_teacher_correct_boxes():
    gt = dict(bboxes=torch.tensor([[0., 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]),
              labels=torch.tensor([0, 1, 2]))
    teacher = boxes([[0, 0, 10, 10, .9, 0], [1, 1, 10, 10, .7, 1],  # box 0: class 0 wins
                     [20, 20, 30, 30, .8, 2],                     # box 1: wrong class
                     [40, 40, 50, 51, .6, 2]])                    # box 2: right
    student = boxes([[1, 1, 10, 10, .55, 0],                      # agrees on box 0
                     [40, 40, 50, 50, .45, 2]])                   # below score_thr: none
    sample = dict(gt_instances=gt, teacher_pred_instances=teacher, pred_instances=student,
                  perturb_pred_instances=[boxes([[0, 0, 10, 10, .8, 1],
                                                 [40, 40, 50, 50, .9, 2]])],
                  perturb_teacher_pred_instances=[boxes([[0, 0, 10, 10, .9, 0],
                                                         [40, 40, 50, 50, .7, 2],
                                                         [70, 70, 80, 80, .9, 1]])])
    m = evaluate(PerturbationDisagreement(score_thr=0.5), [sample])
    assert m == pytest.approx(dict(num_units=2, clean_disagreement=1 / 2,
                                   noise_disagreement=1 / 2, noise_disagreement_any=1 / 2,
                                   num_draws=1))


def test_nothing_without_teacher_or_labels():
    metric = PerturbationDisagreement()
    m = evaluate(metric, [dict(pred_sem_seg=seg([[0, 1]]), gt_sem_seg=seg([[0, 1]])),
                          dict(pred_sem_seg=seg([[0, 1]]), teacher_pred_sem_seg=seg([[0, 1]]))])
    assert m == {}
    assert len(metric.results) == 2  # one entry per sample, for mmengine's merge
