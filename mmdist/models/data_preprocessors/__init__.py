# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Data preprocessors (mmseg): imported when first used, not with this package."""
from mmdist.registry import import_task_module

NAMES = ('BatchMixSegDataPreprocessor', 'SegBatchCutMix', 'SegBatchMixup')


def __getattr__(name: str):
    if name in NAMES:
        return getattr(import_task_module(name), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = list(NAMES)
