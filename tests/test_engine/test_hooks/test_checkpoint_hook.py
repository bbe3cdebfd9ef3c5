# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""SafeCheckpointHook: checkpoints are written atomically (a write that fails midway loses
nothing) and the first non-finite tensor of the state is named.

A toy regression trained through tools/train.py (which configures the hook); the write of
``iter_2.pth`` fails midway because the process's file-size limit (``RLIMIT_FSIZE``) is
set below the checkpoint's size, as a full disk would make it fail.
"""
import os
import os.path as osp
import resource
import signal

import pytest
import torch
from demo.paths import load_tool
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper

from mmdist.engine.hooks.checkpoint_hook import describe_non_finite, named_state_tensors
from mmdist.testing._toy import ToyRegression, write_toy_config


class CutWriteOfIteration(Hook):
    """Before iteration ``n``'s checkpoint is written, limit file sizes to ``limit`` bytes."""

    priority = 'LOWEST'

    def __init__(self, n, limit):
        self.n, self.limit = n, limit

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['iter'] == self.n:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.RLIM_INFINITY))


@pytest.fixture
def file_size_limit_restored():
    saved = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    yield
    resource.setrlimit(resource.RLIMIT_FSIZE, saved)
    signal.signal(signal.SIGXFSZ, handler)


def build_toy_runner(config, work_dir, name, *options):
    """What ``tools/train.py CONFIG --work-dir WORK_DIR --cfg-options ...`` builds."""
    return load_tool('train').build_runner([
        config, '--work-dir', work_dir, '--cfg-options', f'visualizer.name={name}',
        f'experiment_name={name}', 'default_hooks.checkpoint.max_keep_ckpts=1', 'train_cfg.max_iters=3', *options])


def test_a_failed_write_leaves_the_previous_checkpoint_and_last_checkpoint(
        tmp_path, file_size_limit_restored):
    work_dir = str(tmp_path / 'work')
    config = write_toy_config(str(tmp_path / 'toy.py'), dim=256)  # 256 kB checkpoints
    runner = build_toy_runner(config, work_dir, 'cut_write')
    full_size = None

    class Measure(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            nonlocal full_size
            if runner.iter + 1 == 1:
                full_size = osp.getsize(osp.join(work_dir, 'iter_1.pth'))

    runner.register_hook(Measure(), 'LOWEST')
    # Cut the write in the middle of the checkpoint (iter_1.pth and iter_2.pth have the same
    # layout and size up to a few bytes).
    runner.register_hook(CutWriteOfIteration(2, limit=100_000))
    with pytest.raises(OSError):
        runner.train()
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert full_size > 200_000  # the limit really cut the write midway

    # No truncated iter_2.pth, no temporary file left.
    assert [f for f in os.listdir(work_dir) if 'iter_' in f] == ['iter_1.pth']
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work_dir, 'iter_1.pth')
    # The previous checkpoint (max_keep_ckpts=1) is complete and resumable.
    assert osp.getsize(osp.join(work_dir, 'iter_1.pth')) == full_size
    checkpoint = torch.load(osp.join(work_dir, 'iter_1.pth'))
    assert checkpoint['meta']['iter'] == 1
    resumed = build_toy_runner(config, work_dir, 'cut_write_resumed', '--resume')
    resumed.train()
    assert resumed.iter == 3
    assert [f for f in os.listdir(work_dir) if 'iter_' in f] == ['iter_3.pth']


def test_the_first_non_finite_tensor_is_named_weights_and_optimizer_state():
    model = ToyRegression(dim=256)
    optim_wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.1,
                                                                   momentum=0.9)))
    model(inputs=[torch.ones(256)]).popitem()[1].backward()
    optim_wrapper.step()  # creates the momentum buffers
    named = named_state_tensors(model, optim_wrapper)
    assert [name for name, _ in named] == [
        "model tensor 'linear.weight'", "model tensor 'linear.bias'",
        "optimizer state 'momentum_buffer' of 'linear.weight'",
        "optimizer state 'momentum_buffer' of 'linear.bias'"]
    assert describe_non_finite(named) is None
    optim_wrapper.optimizer.state[model.linear.bias]['momentum_buffer'][3] = -float('inf')
    assert describe_non_finite(named) == \
        "optimizer state 'momentum_buffer' of 'linear.bias' holds inf (1 of 4 tensors non-finite)"
    model.linear.weight.data[7, 1] = float('nan')
    assert describe_non_finite(named) == \
        "model tensor 'linear.weight' holds nan (2 of 4 tensors non-finite)"
