# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Synthetic predictions for the faithfulness metric tests (light imports: the
multi-process test re-imports this module in every worker)."""
import os
import pickle

import numpy as np
import torch


def seg_sample(student, teacher=None, label=None):
    """One segmentation data sample as the evaluator hands it over (``to_dict()`` form)."""
    out = dict(seg_logits=dict(data=student))
    if teacher is not None:
        out['teacher_seg_logits'] = dict(data=teacher)
    if label is not None:
        out['gt_sem_seg'] = dict(data=label)
    return out


def random_seg_case(seed, num_classes=5, shape=(20, 30), ignore_frac=0.1, sharpen=3.0):
    """(C, H, W) student and teacher logits (correlated) and (1, H, W) labels with ignores."""
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(num_classes, *shape, generator=g) * sharpen
    teacher = student * 0.5 + torch.randn(num_classes, *shape, generator=g) * sharpen
    label = torch.randint(0, num_classes, (1, *shape), generator=g)
    label[torch.rand(1, *shape, generator=g) < ignore_frac] = 255
    return student, teacher, label


def seg_samples(num_samples, shape=(6, 7)):
    return [seg_sample(*random_seg_case(seed, shape=shape)) for seed in range(num_samples)]


def gloo_seg_worker(rank, world_size, port, num_samples, out_path):
    """One process of a gloo group: DefaultSampler shard -> metric.evaluate()."""
    import torch.distributed as dist
    from mmengine.dataset import DefaultSampler

    from mmdist.evaluation import SegFaithfulnessMetric
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        samples = seg_samples(num_samples)
        metric = SegFaithfulnessMetric()
        for index in DefaultSampler(list(range(num_samples)), shuffle=False):
            metric.process({}, [samples[index]])
        result = metric.evaluate(num_samples)  # mmengine's collect_results + broadcast
        if rank == 0:
            with open(out_path, 'wb') as f:
                pickle.dump(result, f)
    finally:
        dist.destroy_process_group()


def random_boxes(g: np.random.Generator, n: int, size: float = 40) -> torch.Tensor:
    xy = g.uniform(0, size, (n, 2))
    return torch.tensor(np.concatenate([xy, xy + g.uniform(5, 20, (n, 2))], 1))
