# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Per-process sums merged the way mmengine merges results equal one pass over the data."""
import pickle
import socket
from itertools import chain, zip_longest

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mmdist.evaluation import DetFaithfulnessMetric, PerturbationDisagreement, SegFaithfulnessMetric
from mmdist.testing._faithfulness import gloo_seg_worker, random_boxes, seg_samples

NUM_SAMPLES = 5


def det_samples():
    g = np.random.default_rng(0)
    out = []
    for _ in range(NUM_SAMPLES):
        gt = random_boxes(g, 4)
        teacher_boxes = torch.cat([gt + torch.tensor(g.uniform(-2, 2, (4, 4))),
                                   random_boxes(g, 3)])
        student_boxes = torch.cat([teacher_boxes + torch.tensor(g.uniform(-2, 2, (7, 4))),
                                   random_boxes(g, 2)])
        out.append(dict(
            pred_instances=dict(bboxes=student_boxes, scores=torch.tensor(g.uniform(0, 1, 9)),
                                labels=torch.tensor(g.integers(0, 3, 9))),
            teacher_pred_instances=dict(bboxes=teacher_boxes,
                                        scores=torch.tensor(g.uniform(0, 1, 7)),
                                        labels=torch.tensor(g.integers(0, 3, 7))),
            gt_instances=dict(bboxes=gt, labels=torch.tensor(g.integers(0, 3, 4)))))
    return out


def perturb_samples():
    """Segmentation samples with clean and perturbed argmax maps attached."""
    samples = seg_samples(NUM_SAMPLES)
    for i, s in enumerate(samples):
        student, teacher = s['seg_logits']['data'], s['teacher_seg_logits']['data']
        s['pred_sem_seg'] = dict(data=student.argmax(0, keepdim=True))
        s['teacher_pred_sem_seg'] = dict(data=teacher.argmax(0, keepdim=True))
        s['perturb_pred_sem_seg'] = [dict(data=(student + i * teacher).argmax(0, keepdim=True))]
        s['perturb_teacher_pred_sem_seg'] = [s['teacher_pred_sem_seg']]
    return samples


def build(kind):
    if kind == 'seg':
        return SegFaithfulnessMetric()
    if kind == 'det':
        metric = DetFaithfulnessMetric(pseudo_score_thr=0.3, calib_score_thr=0.2)
        metric.dataset_meta = dict(classes=('a', 'b', 'c'))
        return metric
    return PerturbationDisagreement()


def run_single(kind, samples):
    metric = build(kind)
    for s in samples:
        metric.process({}, [s])
    return metric.compute_metrics(metric.results)


def sampler_shards(num_samples, world_size):
    """mmengine's DefaultSampler (shuffle=False, round_up=True) split over ranks."""
    total = -(-num_samples // world_size) * world_size
    indices = (list(range(num_samples)) * 2)[:total]
    return [indices[rank:total:world_size] for rank in range(world_size)]


def mmengine_merge(parts, size):
    """What mmengine.dist.collect_results does with the per-rank result lists."""
    merged = [r for r in chain.from_iterable(zip_longest(*parts)) if r is not None]
    return merged[:size]


@pytest.mark.parametrize('kind', ['seg', 'det', 'perturb'])
def test_two_halves_merged_like_mmengine(kind):
    samples = {'seg': lambda: seg_samples(NUM_SAMPLES), 'det': det_samples,
               'perturb': perturb_samples}[kind]()
    reference = run_single(kind, samples)
    parts = []
    for shard in sampler_shards(NUM_SAMPLES, 2):  # rank 1 repeats sample 0 at its end
        metric = build(kind)
        for index in shard:
            metric.process({}, [samples[index]])
        parts.append(list(metric.results))
    assert [len(p) for p in parts] == [3, 3]
    merged = build(kind).compute_metrics(mmengine_merge(parts, NUM_SAMPLES))
    assert merged.keys() == reference.keys() and len(reference) > 3
    for key in reference:
        assert merged[key] == pytest.approx(reference[key], rel=1e-12, abs=1e-12), key
    # Counting the repeated sample twice changes the numbers: the merge really drops it.
    doubled = build(kind).compute_metrics(list(chain.from_iterable(parts)))
    assert any(doubled[k] != pytest.approx(reference[k], rel=1e-9) for k in reference
               if not k.startswith(('pseudo', 'calib')))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_real_two_process_gloo_evaluation(tmp_path, monkeypatch):
    out_path = str(tmp_path / 'metrics.pkl')
    monkeypatch.chdir(tmp_path)  # collect_results writes its parts under ./.dist_test
    mp.spawn(gloo_seg_worker, args=(2, _free_port(), NUM_SAMPLES, out_path), nprocs=2,
             join=True)
    with open(out_path, 'rb') as f:
        result = pickle.load(f)
    reference = run_single('seg', seg_samples(NUM_SAMPLES))
    assert set(result) == {f'faith/{k}' for k in reference}
    for key, value in reference.items():
        assert result[f'faith/{key}'] == pytest.approx(value, rel=1e-12, abs=1e-12), key
