# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .dist_loss import DISTLoss, dist_loss, dist_relations
from .kd_loss import KDLoss, kd_loss_per_row, kl_divergence

__all__ = ['DISTLoss', 'dist_loss', 'dist_relations', 'KDLoss', 'kd_loss_per_row',
           'kl_divergence']
