# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Give the teacher the student's augmented, padded batch in the teacher's own normalisation.

The student's data preprocessor runs once (normalisation, padding, random batch
augmentations). Normalisation and channel order are per-channel affine maps, and every
batch augmentation (resize, flip, mixup) commutes with them, so the teacher's input is an
affine function of the student's: ``t = s[perm] * scale + shift``. Padding is identical by
construction; padded pixels are reset to the teacher's own pad value.
"""
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn


#: How OpenMMLab preprocessors name their BGR <-> RGB switch: mmengine/mmdet, mmseg,
#: mmpretrain.
CHANNEL_SWITCHES = ('_channel_conversion', 'channel_conversion', 'to_rgb')


def normalization_of(preprocessor: nn.Module, channels: int):
    """(mean, std, swaps_channels) of an mmengine/mmdet/mmseg/mmpretrain preprocessor."""
    swap = any(bool(getattr(preprocessor, name, False)) for name in CHANNEL_SWITCHES)
    if getattr(preprocessor, '_enable_normalize', False):
        mean = preprocessor.mean.detach().float().view(-1)
        std = preprocessor.std.detach().float().view(-1)
    else:
        mean, std = torch.zeros(channels), torch.ones(channels)
    return mean, std, swap


def _pad_value(preprocessor: nn.Module) -> float:
    return float(getattr(preprocessor, 'pad_value', getattr(preprocessor, 'pad_val', 0)))


class TeacherInputAdapter(nn.Module):
    """Map a batch normalised by the student's preprocessor to the teacher's normalisation.

    Args:
        student_preprocessor: the student's data preprocessor (already applied).
        teacher_preprocessor: the teacher's data preprocessor (never run).
        channels: image channels (3 for BGR/RGB images).
    """

    def __init__(self, student_preprocessor: nn.Module, teacher_preprocessor: nn.Module,
                 channels: int = 3) -> None:
        super().__init__()
        mean_s, std_s, swap_s = normalization_of(student_preprocessor, channels)
        mean_t, std_t, swap_t = normalization_of(teacher_preprocessor, channels)
        perm = torch.arange(channels)
        if swap_s != swap_t:
            perm = perm.flip(0)
        # Teacher channel c reads student channel perm[c]:
        #   raw = s[perm[c]] * std_s[perm[c]] + mean_s[perm[c]];  t = (raw - mean_t[c]) / std_t[c]
        scale = std_s[perm] / std_t
        shift = (mean_s[perm] - mean_t) / std_t
        self.identity = bool(swap_s == swap_t and torch.equal(scale, torch.ones_like(scale))
                             and torch.equal(shift, torch.zeros_like(shift)))
        self.swap_channels = swap_s != swap_t
        self.register_buffer('scale', scale.view(1, -1, 1, 1), persistent=False)
        self.register_buffer('shift', shift.view(1, -1, 1, 1), persistent=False)
        self.teacher_pad_value = _pad_value(teacher_preprocessor)

    def forward(self, inputs: Tensor,
                img_shapes: Optional[Sequence[Sequence[int]]] = None) -> Tensor:
        """Convert a batch.

        Args:
            inputs: (N, C, H, W) student-normalised, padded batch.
            img_shapes: per image (h, w) of the unpadded content; the rest is reset to the
                teacher's pad value. ``None`` leaves padding as converted.

        Returns:
            (N, C, H, W) teacher-normalised batch (``inputs`` itself when both
            preprocessors normalise identically).
        """
        if self.identity:
            return inputs
        source = inputs.flip(1) if self.swap_channels else inputs
        out = torch.addcmul(self.shift.to(inputs.dtype), source, self.scale.to(inputs.dtype))
        if img_shapes is not None:
            height, width = inputs.shape[-2:]
            for i, (h, w) in enumerate(img_shapes):
                if h < height:
                    out[i, :, h:, :] = self.teacher_pad_value
                if w < width:
                    out[i, :, :, w:] = self.teacher_pad_value
        return out


def img_shapes_of(data_samples: Optional[List]) -> Optional[List[Sequence[int]]]:
    """``img_shape[:2]`` of every data sample, or None when unknown."""
    if not data_samples:
        return None
    shapes = [getattr(sample, 'img_shape', None) for sample in data_samples]
    if any(shape is None for shape in shapes):
        return None
    return [tuple(shape[:2]) for shape in shapes]
