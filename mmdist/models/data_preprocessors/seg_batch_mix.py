# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Batch Mixup / CutMix for segmentation (calibration-aware distillation).

"Distilling Calibrated Student from an Uncalibrated Teacher" (arXiv 2302.11472) trains
the student on cutout/mixup/CutMix-augmented inputs with the teacher seeing the same
augmented input. The mixing runs in the student's data preprocessor, after
normalisation and padding; the distillers derive the teacher's input from that batch, so
the teacher sees exactly the mixed images.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from torch import Tensor, nn

from mmdist.registry import MODELS


def _labels(data_samples: Sequence) -> Tensor:
    """(N, 1, H, W) stacked ``gt_sem_seg`` label maps."""
    return torch.stack([sample.gt_sem_seg.data for sample in data_samples])


def _set_labels(data_samples: Sequence, labels: Tensor) -> None:
    for sample, label in zip(data_samples, labels):
        sample.gt_sem_seg.data = label


class _BatchMix(nn.Module):
    """Shared arguments and draws of the batch mixers."""

    def __init__(self, alpha: float, prob: float) -> None:
        super().__init__()
        name = type(self).__name__
        if not alpha > 0:
            raise ValueError(f'{name}.alpha must be > 0, got {alpha!r}')
        if not 0 <= prob <= 1:
            raise ValueError(f'{name}.prob must be in [0, 1], got {prob!r}')
        self.alpha, self.prob = alpha, prob

    def forward(self, inputs: Tensor, data_samples: List) -> Tuple[Tensor, List]:
        """Mix with probability ``prob``: ``lam ~ Beta(alpha, alpha)``, partners = a random
        permutation of the batch.

        Args:
            inputs: (N, C, H, W) normalised, padded batch.
            data_samples: its seg data samples (labels modified in place).
        """
        if torch.rand(()) >= self.prob or len(inputs) < 2:
            return inputs, data_samples
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample().item()
        return self.mix(inputs, data_samples, lam, torch.randperm(len(inputs)))

    def mix(self, inputs: Tensor, data_samples: List, lam: float,
            perm: Tensor) -> Tuple[Tensor, List]:
        raise NotImplementedError


@MODELS.register_module()
class SegBatchCutMix(_BatchMix):
    """CutMix: paste a random box of a partner image and its labels into each image.

    The box covers ``1 - lam`` of the image, ``lam ~ Beta(alpha, alpha)`` drawn once per
    batch; partners are a random permutation of the batch. Labels are pasted with the
    pixels, so every label stays exact.

    Args:
        alpha: Beta distribution parameter.
        prob: probability of mixing a batch at all.
    """

    def __init__(self, alpha: float = 1.0, prob: float = 1.0) -> None:
        super().__init__(alpha, prob)

    def mix(self, inputs: Tensor, data_samples: List, lam: float,
            perm: Tensor) -> Tuple[Tensor, List]:
        height, width = inputs.shape[-2:]
        cut_h, cut_w = int(height * (1 - lam)**0.5), int(width * (1 - lam)**0.5)
        cy, cx = torch.randint(height, ()).item(), torch.randint(width, ()).item()
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        inputs = inputs.clone()
        inputs[:, :, y0:y1, x0:x1] = inputs[perm, :, y0:y1, x0:x1]
        labels = _labels(data_samples).clone()
        labels[:, :, y0:y1, x0:x1] = labels[perm, :, y0:y1, x0:x1]
        _set_labels(data_samples, labels)
        return inputs, data_samples


@MODELS.register_module()
class SegBatchMixup(_BatchMix):
    """Mixup: ``lam * x + (1 - lam) * x[perm]`` with ``lam ~ Beta(alpha, alpha)``.

    A pixel's label cannot be mixed for mmseg's hard-label losses: each image keeps the
    labels of the image with the larger weight (its own when ``lam >= 0.5``). The
    distillation losses see the truly mixed images in both networks.

    Args:
        alpha: Beta distribution parameter.
        prob: probability of mixing a batch at all.
    """

    def __init__(self, alpha: float = 0.2, prob: float = 1.0) -> None:
        super().__init__(alpha, prob)

    def mix(self, inputs: Tensor, data_samples: List, lam: float,
            perm: Tensor) -> Tuple[Tensor, List]:
        mixed = inputs * lam + inputs[perm] * (1 - lam)
        if lam < 0.5:
            _set_labels(data_samples, _labels(data_samples)[perm].clone())
        return mixed, data_samples


@MODELS.register_module()
class BatchMixSegDataPreprocessor(SegDataPreProcessor):
    """mmseg's ``SegDataPreProcessor`` that builds and applies ``batch_augments`` in training.

    mmseg 1.2.2 stores ``batch_augments`` unbuilt and calls it as one function; here they
    are built from configs (e.g. ``dict(type='mmdist.SegBatchCutMix')``) and applied in
    order to the normalised, padded training batch.

    Args:
        batch_augments: configs of batch augments, applied in training only.
        **kwargs: the arguments of ``SegDataPreProcessor``.
    """

    def __init__(self, batch_augments: Optional[List[dict]] = None, **kwargs) -> None:
        super().__init__(batch_augments=None, **kwargs)
        self.mix_augments = nn.ModuleList(MODELS.build(cfg) for cfg in batch_augments or [])

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        if training:
            for augment in self.mix_augments:
                data['inputs'], data['data_samples'] = augment(data['inputs'],
                                                               data['data_samples'])
        return data
