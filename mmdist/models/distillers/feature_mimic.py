# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Feature mimic ("DIST + mimic"): MSE between student and teacher FPN levels."""
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.utils import autocast_disabled, check_number


class FeatureMimic(nn.Module):
    """MSE between FPN levels after a 1x1 conv connector per level (student -> teacher).

    ``loss = loss_weight * sum_levels mean((connector_l(f_s,l) - f_t,l)^2)``

    Args:
        student_channels: channels of the student's FPN outputs.
        teacher_channels: channels of the teacher's FPN outputs.
        num_levels: FPN levels (one connector each).
        loss_weight: multiplier of the summed MSE.
    """

    def __init__(self, student_channels: int, teacher_channels: int, num_levels: int = 5,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = check_number('mimic.loss_weight', loss_weight)
        self.connectors = nn.ModuleList(
            nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
            for _ in range(num_levels))

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
        """Args: per-level (N, C_s, H, W) student and (N, C_t, H, W) teacher features."""
        if not len(student_feats) == len(teacher_feats) == len(self.connectors):
            raise ValueError(f'mimic: {len(self.connectors)} connectors (mimic.num_levels) but '
                             f'{len(student_feats)} student and {len(teacher_feats)} teacher '
                             'feature levels')
        total = 0
        for connector, f_s, f_t in zip(self.connectors, student_feats, teacher_feats):
            mapped = connector(f_s)
            with autocast_disabled(mapped):
                total = total + F.mse_loss(mapped.float(), f_t.detach().float())
        return self.loss_weight * total
