# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""A non-finite distillation loss stops training, naming iteration and loss term."""
import os.path as osp

import pytest
import torch
from conftest import load_tool
from segmentation_helpers import write_segmentation_configs

from mmdist.engine import NonFiniteLossError
from mmdist.models.losses import DISTLoss
from mmdist.registry import MODELS


@MODELS.register_module(force=True)
class NaNOnThirdCallDISTLoss(DISTLoss):
    """Test-only: DIST that returns NaN from its third call on."""

    calls = 0

    def forward(self, *args, **kwargs):
        type(self).calls += 1
        loss = super().forward(*args, **kwargs)
        return loss * float('nan') if type(self).calls >= 3 else loss


def test_nan_distillation_loss_stops_training_before_its_checkpoint(tmp_path, cityscapes_root):
    cfg = write_segmentation_configs(str(tmp_path), cityscapes_root, 'pspnet')['config']
    work_dir = str(tmp_path / 'work')
    NaNOnThirdCallDISTLoss.calls = 0
    runner = load_tool('train').build_runner([
        cfg, '--work-dir', work_dir, '--cfg-options', 'visualizer.name=nan_hook',
        'model.loss_aux=None', 'model.loss_decode.type=mmdist.NaNOnThirdCallDISTLoss',
        'default_hooks.checkpoint.interval=1'
    ])
    with pytest.raises(NonFiniteLossError,
                       match=r"iteration 3: loss term 'loss_dist_decode' is nan"):
        runner.train()
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    assert not osp.exists(osp.join(work_dir, 'iter_3.pth'))
    # The last good checkpoint holds finite weights.
    state = torch.load(osp.join(work_dir, 'iter_2.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_training_runs_get_the_mmdist_hooks(tmp_path, cityscapes_root):
    cfg = write_segmentation_configs(str(tmp_path), cityscapes_root, 'pspnet')['config']
    runner = load_tool('train').build_runner(
        [cfg, '--work-dir', str(tmp_path / 'w'), '--cfg-options', 'visualizer.name=hooks'])
    names = [type(hook).__name__ for hook in runner.hooks]
    assert 'RNGStateHook' in names and 'FiniteLossHook' in names
    # ... and the non-finite check runs before the checkpoint is saved.
    assert names.index('FiniteLossHook') < names.index('CheckpointHook')
