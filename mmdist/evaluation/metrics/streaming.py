# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Metrics that keep running sums instead of per-sample results, and stay exact under
mmengine's multi-process evaluation.

mmengine gathers ``self.results`` of every process with ``collect_results``: it
interleaves the per-process lists (rank 0's first entry, rank 1's first entry, ...) and
truncates the result to the dataset size, which drops the samples the distributed sampler
repeated to give every process the same number of samples. Those repeats are always the
*last* sample of a process. So each process keeps

    results[0]   sums over all its samples but the last
    results[1:-1] ``{}`` placeholders (one per sample, so the interleaving lines up)
    results[-1]  sums of its last sample alone

and ``compute_metrics`` adds up whatever survives the truncation: exactly the sums over
the dataset's samples, each counted once. Memory per process is two sets of sums plus
one empty dict per sample.
"""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

Sums = Dict[str, np.ndarray]


def _add_into(total: Sums, part: Sums) -> None:
    for key, value in part.items():
        if key in total:
            if np.shape(total[key]) != np.shape(value):
                raise ValueError(f'cannot add sums of {key!r}: shapes {np.shape(total[key])} '
                                 f'and {np.shape(value)} differ (num_classes changed?)')
            total[key] = total[key] + value
        else:
            total[key] = np.array(value, dtype=np.float64, copy=True)


def merge_sums(results: Sequence[Sums]) -> Sums:
    """Sum the per-sample / per-process sums of ``results`` (``{}`` entries add nothing)."""
    total: Sums = {}
    for part in results:
        _add_into(total, part)
    return total


class StreamingSumMetric(BaseMetric):
    """Base of metrics whose state is a dict of additive numpy arrays.

    Subclasses call :meth:`add_sample` once per data sample with that sample's sums and
    implement ``compute_metrics(results)`` on ``merge_sums(results)``.
    """

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        self.model_info: Dict[str, Any] = {}

    def set_model_info(self, info: Dict[str, Any]) -> None:
        """Called by the paired loops: test configs of both models, perturbation settings."""
        self.model_info = dict(info)

    def add_sample(self, sums: Sums) -> None:
        """Record one sample's sums (see the module docstring for the layout)."""
        sums = {key: np.asarray(value, dtype=np.float64) for key, value in sums.items()}
        results: List[Sums] = self.results
        if len(results) >= 2:
            _add_into(results[0], results[-1])  # builds new arrays, never writes in place
            results[-1] = {}
        results.append(sums)
