# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .det_faithfulness import DetFaithfulnessMetric
from .perturbation import PerturbationDisagreement
from .seg_faithfulness import SegFaithfulnessMetric
from .streaming import StreamingSumMetric, merge_sums

__all__ = [
    'DetFaithfulnessMetric', 'PerturbationDisagreement', 'SegFaithfulnessMetric',
    'StreamingSumMetric', 'merge_sums'
]
