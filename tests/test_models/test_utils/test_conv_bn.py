# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Folding eval-mode BatchNorms into convolutions keeps every output of the stock
OpenMMLab networks (to float rounding), and leaves alone what it cannot prove safe."""
import copy

import pytest
import torch
from mmcv.cnn import ConvModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmdist.models.utils.conv_bn import fold_batch_norms


def randomise_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, then eval mode."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.running_mean.uniform_(-1, 1, generator=gen)
            module.running_var.uniform_(0.3, 3, generator=gen)
            if module.affine:
                module.weight.data.uniform_(0.5, 1.5, generator=gen)
                module.bias.data.uniform_(-0.5, 0.5, generator=gen)
    model.eval()  # (mmdet's ResNet.train returns None)
    return model


def batch_norms(model: nn.Module) -> int:
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


def outputs(model: nn.Module, x: torch.Tensor):
    with torch.no_grad():
        out = model(x)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def fold_and_compare(model: nn.Module, x: torch.Tensor, expected_folds: int):
    folded = copy.deepcopy(model)
    assert fold_batch_norms(folded) == expected_folds
    assert batch_norms(folded) == batch_norms(model) - expected_folds
    for ours, stock in zip(outputs(folded, x), outputs(model, x), strict=True):
        assert ours.shape == stock.shape
        torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5 * stock.abs().max())
    return folded


def backbones():
    from mmdet.models.backbones import ResNet as DetResNet
    from mmdet.models.backbones import ResNeXt
    from mmpretrain.models.backbones import ResNet as ClsResNet
    from mmseg.models.backbones import ResNetV1c
    return {
        'mmdet ResNet-18': lambda: DetResNet(depth=18),
        'mmdet ResNet-50 (caffe style, frozen stage)': lambda: DetResNet(
            depth=50, style='caffe', frozen_stages=1),
        'mmdet ResNeXt-50 32x4d': lambda: ResNeXt(depth=50, groups=32, base_width=4),
        'mmseg ResNetV1c-18 d8 (deep stem, dilations)': lambda: ResNetV1c(
            depth=18, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)),
        'mmpretrain ResNet-34': lambda: ClsResNet(depth=34),
    }


@pytest.mark.parametrize('name', list(backbones()))
def test_every_batch_norm_of_openmmlab_resnets_is_folded(name):
    model = randomise_statistics(backbones()[name]())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    folded = fold_and_compare(model, x, expected_folds=batch_norms(model))
    assert batch_norms(folded) == 0
    assert not any(p.requires_grad for m in folded.modules() if isinstance(m, nn.Conv2d)
                   for p in m.parameters())


def test_conv_module_and_sequential_pairs():
    model = randomise_statistics(nn.Sequential(
        ConvModule(3, 4, 3, padding=1, norm_cfg=dict(type='BN')),  # conv, norm, act
        nn.Conv2d(4, 5, 1, bias=True), nn.BatchNorm2d(5, affine=False), nn.ReLU(),
        ConvModule(5, 6, 1, norm_cfg=dict(type='SyncBN'))))
    x = torch.randn(2, 3, 8, 8)
    folded = fold_and_compare(model, x, expected_folds=3)
    assert isinstance(folded[0].norm, nn.Identity) and isinstance(folded[2], nn.Identity)


def test_pairs_whose_data_flow_is_unknown_or_different_are_left_alone():
    class NormFirst(nn.Module):
        """Registers conv then bn, but normalises the input before the conv."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            return self.conv(self.bn(x))

    shared = nn.Conv2d(3, 3, 1)

    class SharedConv(nn.Module):
        """The same conv is followed by a BatchNorm in one place and used alone in another."""

        def __init__(self):
            super().__init__()
            self.pair = nn.Sequential(shared, nn.BatchNorm2d(3))
            self.alone = shared

        def forward(self, x):
            return self.pair(x) + self.alone(x)

    model = randomise_statistics(nn.Sequential(
        NormFirst(),
        SharedConv(),
        ConvModule(3, 3, 1, norm_cfg=dict(type='BN'), order=('norm', 'conv', 'act')),
        ConvModule(3, 3, 1, conv_cfg=dict(type='ConvWS'), norm_cfg=dict(type='BN')),
        nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 3, 1)),
    ))
    fold_and_compare(model, torch.randn(2, 3, 8, 8), expected_folds=0)


def test_training_mode_batch_norms_are_left_alone():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
    model.train()
    assert fold_batch_norms(model) == 0
    assert isinstance(model[1], nn.BatchNorm2d)


def test_folded_values_match_the_closed_form():
    conv = nn.Conv2d(2, 3, 1, bias=False)
    bn = randomise_statistics(nn.BatchNorm2d(3, eps=0.1))
    model = nn.Sequential(conv, bn).eval()
    weight = conv.weight.detach().clone().view(3, 2)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + 0.1)
    shift = bn.bias.detach() - bn.running_mean * scale
    assert fold_batch_norms(model) == 1
    torch.testing.assert_close(model[0].weight.view(3, 2), weight * scale[:, None])
    torch.testing.assert_close(model[0].bias, shift)
