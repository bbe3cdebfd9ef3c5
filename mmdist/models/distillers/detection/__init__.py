# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The units of :class:`~mmdist.models.distillers.DetectionDistiller`: head readers (how
each dense head family computes its class logits) and distillation units (how a student
is paired with a teacher). Importing this package registers them all."""
from . import rtmdet, yolox  # noqa: F401  (register their head readers)
from .cross_head import CrossHead
from .dense import DenseDirect
from .heads import READERS, DenseHeadReader, head_reader, register_reader
from .queries import QUERY_LAYERS, HungarianQueries
from .roi import RoIHeads, roi_class_logits
from .rows import DENSE_ROWS, DenseRows, pair_levels
from .unit import UNITS, DetectionUnit, HeadOptions, build_unit, register_unit

__all__ = [
    'CrossHead', 'DenseDirect', 'READERS', 'DenseHeadReader', 'head_reader', 'register_reader',
    'QUERY_LAYERS', 'HungarianQueries',
    'RoIHeads', 'roi_class_logits', 'DENSE_ROWS', 'DenseRows', 'pair_levels', 'UNITS',
    'DetectionUnit', 'HeadOptions', 'build_unit', 'register_unit'
]
