# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Losses, distillers and data preprocessors. Importing this package imports no
OpenMMLab toolbox: each task's components import theirs when first used."""
from .distillers import BaseDistiller, FeatureMimic
from .losses import DISTLoss, KDLoss, dist_loss, dist_relations, kd_loss_per_row
from .utils import dense_to_rows

__all__ = [
    'BaseDistiller', 'FeatureMimic', 'DISTLoss', 'KDLoss', 'dist_loss', 'dist_relations',
    'kd_loss_per_row', 'dense_to_rows'
]
