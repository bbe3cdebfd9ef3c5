# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Distillers. The task distillers import their toolbox (mmdet, mmseg, mmpretrain) when
first used (attribute access or registry lookup), not when this package is imported."""
from mmdist.registry import TASK_MODULES, import_task_module
from .base_distiller import BaseDistiller
from .feature_mimic import FeatureMimic

TASKS = ('ClassificationDistiller', 'DetectionDistiller', 'SegmentationDistiller')


def __getattr__(name: str):
    if name in TASKS:
        return getattr(import_task_module(name), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['BaseDistiller', 'FeatureMimic', *TASKS]
assert set(TASKS) <= set(TASK_MODULES)
