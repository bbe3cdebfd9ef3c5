# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DetFaithfulnessMetric against hand-computed cases and pycocotools' AP."""
import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import mmdist.evaluation.metrics.det_faithfulness as det_module
from mmdist.evaluation import DetFaithfulnessMetric
from mmdist.testing._faithfulness import random_boxes

CLASSES = ('square', 'circle', 'triangle')


def instances(boxes, scores, labels):
    return dict(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                scores=torch.tensor(scores, dtype=torch.float32),
                labels=torch.tensor(labels, dtype=torch.int64))


def build(**kwargs):
    metric = DetFaithfulnessMetric(**kwargs)
    metric.dataset_meta = dict(classes=CLASSES)
    return metric


def evaluate(metric, samples):
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_fidelity_hand_computed():
    teacher = instances([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]],
                        [.95, .7, .4], [0, 1, 0])  # the third is below pseudo_score_thr
    student = instances(
        [[0, 0, 10, 11],      # S1 on T1, class 0, .6: true positive
         [20, 20, 30, 31],    # S2 on T2 with the wrong class, .65: false positive
         [21, 20, 30, 30],    # S3 on T2, class 1, .3 (below the threshold): true positive
         [40, 40, 50, 50]],   # S4 on the sub-threshold teacher box: false positive
        [.6, .65, .3, .1], [0, 0, 1, 0])
    m = evaluate(build(pseudo_score_thr=0.5),
                 [dict(pred_instances=student, teacher_pred_instances=teacher)])
    # class 0: S2 (FP) then S1 (TP): precision 1/2 at recall 1 -> AP .5; class 1: AP 1
    assert m['fidelity_AP50'] == pytest.approx(0.75)
    # at score >= .5 the student has S2 (FP) and S1 (TP); 2 pseudo boxes
    assert m['fidelity_recall'] == pytest.approx(0.5)
    assert m['fidelity_precision'] == pytest.approx(0.5)
    assert m['matched_conf_gap'] == pytest.approx(((.95 - .6) + (.7 - .3)) / 2, abs=1e-6)
    assert m['num_pseudo_boxes'] == 2 and m['pseudo_score_thr'] == 0.5
    # per class: T1 (class 0) matched by S1 at >= .5; T2 (class 1) only by S3 (.3 < .5);
    # class 2 has no pseudo box
    assert m['fidelity_recall.0'] == 1.0 and m['fidelity_recall.1'] == 0.0
    assert np.isnan(m['fidelity_recall.2'])
    assert m['fidelity_recall_class_macro'] == pytest.approx(0.5)
    assert 'dece_student' not in m  # no ground truth


def test_dece_hand_computed():
    gt = dict(bboxes=torch.tensor([[0., 0, 10, 10], [20, 20, 30, 30]]),
              labels=torch.tensor([0, 1]))
    ignored = dict(bboxes=torch.tensor([[60., 60, 90, 90]]), labels=torch.tensor([0]))
    student = instances(
        [[0, 0, 10, 10],      # .9 true positive                      (bin 13)
         [0, 0, 10, 9],       # .8 duplicate of the same box: FP       (bin 12)
         [40, 40, 50, 50],    # .6 nothing there: FP                   (bin 9)
         [20, 20, 30, 30],    # .2 below calib_score_thr: left out
         [65, 65, 80, 80]],   # .5 inside an ignored region: left out
        [.9, .8, .6, .2, .5], [0, 0, 0, 1, 0])
    teacher = instances([[0, 0, 10, 10], [20, 20, 30, 30]], [.7, .35], [0, 1])
    m = evaluate(build(calib_score_thr=0.3, pseudo_score_thr=0.9),
                 [dict(pred_instances=student, teacher_pred_instances=teacher,
                       gt_instances=gt, ignored_instances=ignored)])
    assert m['dece_student'] == pytest.approx((.1 + .8 + .6) / 3, abs=1e-6)
    assert m['dece_teacher'] == pytest.approx((.3 + .65) / 2, abs=1e-6)
    assert m['dece_diff'] == pytest.approx(m['dece_student'] - m['dece_teacher'])
    assert m['calib_score_thr'] == 0.3
    # no teacher box reaches pseudo_score_thr=.9: AP is undefined, recall too
    assert np.isnan(m['fidelity_AP50']) and m['num_pseudo_boxes'] == 0


def test_class_balanced_dece_hand_computed():
    """Per predicted class D-ECE, averaged over classes: differs from the pooled D-ECE when
    classes have different numbers of detections."""
    gt = dict(bboxes=torch.tensor([[0., 0, 10, 10], [20, 20, 30, 30]]),
              labels=torch.tensor([0, 0]))
    student = instances(
        [[0, 0, 10, 10],      # class 0, .9, true positive
         [20, 20, 30, 30],    # class 0, .9, true positive (same bin as the first)
         [40, 40, 50, 50]],   # class 1, .6, false positive
        [.9, .9, .6], [0, 0, 1])
    m = evaluate(build(calib_score_thr=0.3), [dict(pred_instances=student, gt_instances=gt)])
    # pooled: bin of .9: |2 - 1.8|, bin of .6: |0 - .6|, over 3 detections
    assert m['dece_student'] == pytest.approx((0.2 + 0.6) / 3, abs=1e-6)
    # class 0: |2 - 1.8| / 2 = .1; class 1: .6; class 2: no detection, left out
    assert m['cb_dece_student'] == pytest.approx((0.1 + 0.6) / 2, abs=1e-6)


def coco_ap50(images):
    """pycocotools' AP@0.5 with the teacher's pseudo boxes as ground truth."""
    gt = dict(images=[], annotations=[], categories=[dict(id=i, name=n)
                                                     for i, n in enumerate(CLASSES)])
    dets = []
    for img_id, (student, pseudo) in enumerate(images):
        gt['images'].append(dict(id=img_id, width=100, height=100))
        for box, label in zip(pseudo['bboxes'].tolist(), pseudo['labels'].tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            gt['annotations'].append(dict(id=len(gt['annotations']) + 1, image_id=img_id,
                                          category_id=label, bbox=[box[0], box[1], w, h],
                                          area=w * h, iscrowd=0))
        for box, score, label in zip(student['bboxes'].tolist(), student['scores'].tolist(),
                                     student['labels'].tolist()):
            dets.append(dict(image_id=img_id, category_id=label, score=score,
                             bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]]))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(dets), 'bbox')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[1]


def test_fidelity_ap_matches_pycocotools():
    g = np.random.default_rng(1)
    # distinct scores, each in its own score bin of the streaming histogram
    scores = iter(g.permutation(np.arange(1000)) / 1000 + 0.0005)
    images, samples = [], []
    for _ in range(6):
        pseudo_boxes = random_boxes(g, 6)
        pseudo = dict(bboxes=pseudo_boxes, labels=torch.tensor(g.integers(0, 3, 6)),
                      scores=torch.ones(6))
        near = pseudo_boxes[g.integers(0, 6, 9)] + torch.tensor(g.uniform(-3, 3, (9, 4)))
        boxes = torch.cat([near, random_boxes(g, 4)])
        student = dict(bboxes=boxes, labels=torch.tensor(g.integers(0, 3, 13)),
                       scores=torch.tensor([next(scores) for _ in range(13)]))
        images.append((student, pseudo))
        samples.append(dict(pred_instances=student, teacher_pred_instances=pseudo))
    m = evaluate(build(pseudo_score_thr=0.5), samples)
    reference = coco_ap50(images)
    assert 0.05 < reference < 0.95  # a non-trivial case
    assert m['fidelity_AP50'] == pytest.approx(reference, abs=1e-9)


def test_identical_detections_are_fully_faithful():
    g = np.random.default_rng(2)
    boxes = random_boxes(g, 8)
    dets = dict(bboxes=boxes, scores=torch.tensor(g.uniform(0, 1, 8)),
                labels=torch.tensor(g.integers(0, 3, 8)))
    gt = dict(bboxes=boxes[:4] + 1, labels=dets['labels'][:4])
    m = evaluate(build(pseudo_score_thr=0.3, calib_score_thr=0.1),
                 [dict(pred_instances=dets, teacher_pred_instances=dets, gt_instances=gt)])
    assert m['num_pseudo_boxes'] == (dets['scores'] >= 0.3).sum()
    assert m['fidelity_AP50'] == 1.0 and m['fidelity_recall'] == 1.0
    assert m['fidelity_precision'] == 1.0 and m['matched_conf_gap'] == 0.0
    assert m['dece_diff'] == 0.0 and m['dece_student'] > 0


def test_plain_loop_reports_student_dece_and_logs_settings(monkeypatch):
    logged = []
    monkeypatch.setattr(det_module, 'print_log', lambda msg, **kw: logged.append(msg))
    gt = dict(bboxes=torch.tensor([[0., 0, 10, 10]]), labels=torch.tensor([0]))
    student = instances([[0, 0, 10, 10]], [.75], [0])
    metric = build(calib_score_thr=0.3)
    m = evaluate(metric, [dict(pred_instances=student, gt_instances=gt)])
    assert m == dict(dece_student=pytest.approx(0.25), cb_dece_student=pytest.approx(0.25),
                     calib_score_thr=0.3)
    assert 'score >= 0.3' in logged[-1] and 'student test_cfg: unknown' in logged[-1]

    metric.set_model_info(dict(student_test_cfg=dict(score_thr=0.05, nms=dict(iou=0.5)),
                               teacher_test_cfg=dict(score_thr=0.01)))
    teacher = instances([[0, 0, 10, 10]], [.9], [0])
    m = evaluate(metric, [dict(pred_instances=student, teacher_pred_instances=teacher,
                               gt_instances=gt)])
    assert m['fidelity_AP50'] == 1.0 and m['pseudo_score_thr'] == 0.5
    assert '"score_thr": 0.05' in logged[-1] and '"score_thr": 0.01' in logged[-1]
    assert 'teacher detections with score >= 0.5' in logged[-1]


def test_needs_class_names():
    metric = DetFaithfulnessMetric()
    with pytest.raises(ValueError, match='classes'):
        metric.process({}, [dict(pred_instances=instances([[0, 0, 1, 1]], [.5], [0]),
                                 teacher_pred_instances=instances([], [], []))])
