# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Naming what a partial checkpoint leaves at its initial weights."""
import torch

from mmdist.utils.checkpoint_fit import fit_checkpoint, modules_left_at_init


def test_modules_left_at_init_are_the_largest_ones_not_loaded():
    model = {key: torch.zeros(2) for key in (
        'net.stem.conv.weight', 'net.stem.bn.weight', 'net.layer1.conv.weight',
        'net.layer1.conv.bias', 'net.layer1.bn.weight', 'head.cls.weight', 'head.reg.weight',
        'scale')}
    checkpoint = {'net.layer1.conv.weight': torch.zeros(2), 'net.layer1.bn.weight': torch.zeros(2),
                  'head.cls.weight': torch.zeros(3), 'other.weight': torch.zeros(2)}
    fit = fit_checkpoint(model, checkpoint)
    assert fit.fitting == ['net.layer1.conv.weight', 'net.layer1.bn.weight']
    # net.stem: nothing of it loaded; net.layer1.conv.bias: beside a loaded weight; head:
    # its classifier has another shape, its regressor is missing; scale: a top-level tensor.
    assert modules_left_at_init(fit) == ['net.stem', 'net.layer1.conv.bias', 'head', 'scale']
