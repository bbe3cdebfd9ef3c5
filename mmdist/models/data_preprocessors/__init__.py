# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .seg_batch_mix import BatchMixSegDataPreprocessor, SegBatchCutMix, SegBatchMixup

__all__ = ['BatchMixSegDataPreprocessor', 'SegBatchCutMix', 'SegBatchMixup']
