# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .base_distiller import BaseDistiller
from .classification_distiller import ClassificationDistiller
from .detection_distiller import DetectionDistiller
from .feature_mimic import FeatureMimic
from .segmentation_distiller import SegmentationDistiller

__all__ = [
    'BaseDistiller', 'ClassificationDistiller', 'DetectionDistiller', 'FeatureMimic',
    'SegmentationDistiller'
]
