# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""SafeCheckpointHook: checkpoints are written atomically (a write that fails midway loses
nothing) and the first non-finite tensor of the state is named.

A toy mmengine Runner with the checkpoint hook tools/train.py configures; the write of
``iter_2.pth`` fails midway because the process's file-size limit (``RLIMIT_FSIZE``) is
set below the checkpoint's size, as a full disk would make it fail.
"""
import os
import os.path as osp
import resource
import signal

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

from mmdist.engine.hooks.checkpoint_hook import describe_non_finite, named_state_tensors
from mmdist.utils import add_training_hooks


class ToyModel(BaseModel):
    """A 256 kB linear regression: checkpoints big enough to be cut in the middle."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(256, 256)

    def forward(self, inputs, mode='loss'):
        return dict(loss=self.linear(torch.stack(inputs)).square().mean())


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


def build_toy_runner(work_dir, name, resume=False, **checkpoint):
    cfg = Config(dict(default_hooks=dict(
        checkpoint=dict(type='CheckpointHook', by_epoch=False, **checkpoint))))
    add_training_hooks(cfg)  # what tools/train.py does to the config's hooks
    return Runner(
        model=ToyModel(), work_dir=work_dir, experiment_name=name, resume=resume,
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(256))] * 4, batch_size=1,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=3), default_hooks=cfg.default_hooks,
        custom_hooks=cfg.custom_hooks, visualizer=dict(type='Visualizer', name=name))


def test_a_failed_write_leaves_the_previous_checkpoint_and_last_checkpoint(
        tmp_path, file_size_limit_restored):
    work_dir = str(tmp_path)
    runner = build_toy_runner(work_dir, 'cut_write', interval=1, max_keep_ckpts=1)
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
    # --resume: from the checkpoint last_checkpoint names
    resumed = build_toy_runner(work_dir, 'cut_write_resumed', resume=True, interval=1,
                               max_keep_ckpts=1)
    resumed.train()
    assert resumed.iter == 3
    assert [f for f in os.listdir(work_dir) if 'iter_' in f] == ['iter_3.pth']


def test_the_first_non_finite_tensor_is_named_weights_and_optimizer_state():
    model = ToyModel()
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
