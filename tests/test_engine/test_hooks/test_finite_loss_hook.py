# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""A non-finite loss or weight stops training on every rank before a checkpoint holds it."""
import glob
import os
import os.path as osp
import socket

import pytest
import torch
import torch.multiprocessing as mp
from demo.paths import ROOT as REPO, load_tool

from mmdist.engine import NonFiniteLossError, NonFiniteStateError
from mmdist.models.losses import DISTLoss
from mmdist.registry import MODELS
from mmdist.testing._segmentation import write_segmentation_configs
from mmdist.testing._toy import train_as_rank, write_toy_config


@MODELS.register_module(force=True)
class NaNOnThirdCallDISTLoss(DISTLoss):
    """Test-only: DIST that returns NaN from its third call on."""

    calls = 0

    def forward(self, *args, **kwargs):
        type(self).calls += 1
        loss = super().forward(*args, **kwargs)
        return loss * float('nan') if type(self).calls >= 3 else loss


def checkpoint_tensors(path):
    """All floating tensors of a checkpoint file (weights, buffers, optimizer state)."""
    ckpt = torch.load(path)
    tensors = [v for v in ckpt['state_dict'].values() if v.is_floating_point()]
    for state in ckpt.get('optimizer', {}).get('state', {}).values():
        tensors += [v for v in state.values() if torch.is_tensor(v) and v.is_floating_point()]
    return tensors


def assert_checkpoints_finite(work_dir):
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        tensors = checkpoint_tensors(path)
        assert tensors and all(torch.isfinite(t).all() for t in tensors), path


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
    assert_checkpoints_finite(work_dir)  # the last good checkpoint holds finite weights


def test_non_finite_weights_are_never_checkpointed(tmp_path, cityscapes_root):
    """Issue 20's reproduction: lr=3e38 makes the weights infinite after the first step
    while the first loss is finite; no checkpoint may hold them."""
    cfg = write_segmentation_configs(str(tmp_path), cityscapes_root, 'pspnet')['config']
    work_dir = str(tmp_path / 'work')
    runner = load_tool('train').build_runner([
        cfg, '--work-dir', work_dir, '--cfg-options', 'visualizer.name=lr_overflow',
        'optim_wrapper.optimizer.lr=3e38', 'param_scheduler=[]', 'train_cfg.max_iters=8',
        'default_hooks.checkpoint.interval=1'
    ])
    with pytest.raises(NonFiniteStateError) as raised:
        runner.train()
    message = str(raised.value)
    assert message.startswith("iteration 1: model tensor 'student."), message
    assert 'iter_1.pth was not written' in message and 'no checkpoint written yet' in message
    # The tensor named is the first non-finite one of the student's state_dict.
    student = runner.model.state_dict()
    first = next(k for k, v in student.items() if v.is_floating_point()
                 and not torch.isfinite(v).all())
    assert message.startswith(f'iteration 1: model tensor {first!r} holds ')
    assert glob.glob(osp.join(work_dir, '*.pth')) == []
    assert not osp.exists(osp.join(work_dir, 'last_checkpoint'))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_infinite_loss_stops_training(tmp_path):
    """Issue 23: an infinite (not NaN) loss stops training too; a hook testing ``isnan``
    would train on. Sample 2 (iteration 3) is 1e30: the squared loss overflows to +inf."""
    cfg = write_toy_config(str(tmp_path / 'toy.py'), bad_index=2, bad_value='1e30')
    runner = load_tool('train').build_runner(
        [cfg, '--work-dir', str(tmp_path), '--cfg-options', 'visualizer.name=toy_inf'])
    with pytest.raises(NonFiniteLossError, match=r"iteration 3: loss term 'loss' is inf;"):
        runner.train()
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith('.pth')) == \
        ['iter_1.pth', 'iter_2.pth']
    assert_checkpoints_finite(str(tmp_path))


@pytest.mark.parametrize('fault', ['nan_batch_on_rank1', 'huge_lr'])
def test_ranks_agree_before_saving_when_one_rank_goes_non_finite(tmp_path, fault):
    """Issue 20's 2-rank case, through ``tools/train.py --launcher pytorch``: 2 gloo ranks
    (DDP), a checkpoint every iteration.

    * ``nan_batch_on_rank1``: only rank 1's batch of iteration 3 is NaN. Both ranks stop at
      iteration 3, naming rank 1's loss; rank 0 (which alone saves, and whose weights DDP
      made NaN too) writes no iter_3.pth.
    * ``huge_lr``: lr=3e38 on inputs of 100 makes the weights infinite in the first step,
      while its loss is finite. Both ranks stop before iter_1.pth, each naming its first
      non-finite tensor.
    """
    options = ['env_cfg.dist_cfg.timeout=60']
    if fault == 'huge_lr':
        options.append('optim_wrapper.optimizer.lr=3e38')
        cfg = write_toy_config(str(tmp_path / 'toy.py'), fill=100.0)
    else:  # DefaultSampler without shuffling: rank 1 reads samples 1, 3, 5, ...
        cfg = write_toy_config(str(tmp_path / 'toy.py'), bad_index=5, bad_value='nan')
    work_dir = str(tmp_path / 'work')
    argv = [cfg, '--work-dir', work_dir, '--cfg-options', *options]
    train_script = osp.join(REPO, 'tools', 'train.py')
    mp.spawn(train_as_rank, args=(2, _free_port(), train_script, argv, str(tmp_path)), nprocs=2,
             join=True)
    outcomes = []
    for rank in (0, 1):
        with open(tmp_path / f'rank{rank}.txt') as f:
            outcomes.append(f.read())
    if fault == 'nan_batch_on_rank1':
        for outcome in outcomes:
            assert outcome.startswith("NonFiniteLossError: iteration 3: loss term 'loss' is "
                                      'nan on rank 1;'), outcome
        last = 'iter_2.pth'
    else:
        for outcome in outcomes:
            assert outcome.startswith(
                "NonFiniteStateError: iteration 1: rank 0: model tensor 'linear.weight' holds "
                '') and "; rank 1: model tensor 'linear.weight' holds " in outcome and \
                'iter_1.pth was not written' in outcome, outcome
        last = None
    assert_checkpoints_finite(work_dir)
    saved = sorted(f for f in os.listdir(work_dir) if f.endswith('.pth'))
    if last is None:
        assert saved == [] and not osp.exists(osp.join(work_dir, 'last_checkpoint'))
    else:
        assert saved[-1] == last
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            assert f.read() == osp.join(work_dir, last)


def test_training_runs_get_the_mmdist_hooks(tmp_path, cityscapes_root):
    cfg = write_segmentation_configs(str(tmp_path), cityscapes_root, 'pspnet')['config']
    runner = load_tool('train').build_runner(
        [cfg, '--work-dir', str(tmp_path / 'w'), '--cfg-options', 'visualizer.name=hooks'])
    names = [type(hook).__name__ for hook in runner.hooks]
    assert 'RNGStateHook' in names and 'FiniteLossHook' in names
    # mmengine's CheckpointHook is replaced by the one that checks and writes atomically...
    assert 'SafeCheckpointHook' in names and 'CheckpointHook' not in names
    # ... and the non-finite loss check runs before the checkpoint is saved.
    assert names.index('FiniteLossHook') < names.index('SafeCheckpointHook')
