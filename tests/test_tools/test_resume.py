# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Resume on torch >= 2.6: interrupted + resumed == uninterrupted, loss for loss."""
import os.path as osp

import numpy as np
import pytest
import torch
from demo.paths import load_tool
from mmengine.hooks import Hook

from mmdist.testing._detection import write_retinanet_configs
from mmdist.testing._segmentation import write_segmentation_configs
from mmdist.testing._toy import write_toy_config
from mmdist.utils import CheckpointError


class CrashAfter(Hook):
    """Simulates a killed job: raises after iteration (or epoch) ``n``, after its
    checkpoint."""

    priority = 'LOWEST'

    def __init__(self, n, by_epoch=False):
        self.n, self.by_epoch = n, by_epoch

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not self.by_epoch and runner.iter + 1 == self.n:
            raise KeyboardInterrupt(f'simulated interruption after iteration {self.n}')

    def after_train_epoch(self, runner):
        if self.by_epoch and runner.epoch + 1 == self.n:
            raise KeyboardInterrupt(f'simulated interruption after epoch {self.n}')


def run(config, work_dir, name, *extra, crash_after=None, by_epoch=False,
        options=('default_hooks.checkpoint.interval=2', 'train_cfg.val_interval=2')):
    runner = load_tool('train').build_runner([
        config, '--work-dir', work_dir, *extra, '--cfg-options', f'visualizer.name={name}',
        f'experiment_name={name}', *options
    ])
    if crash_after is not None:
        runner.register_hook(CrashAfter(crash_after, by_epoch))
        with pytest.raises(KeyboardInterrupt):
            runner.train()
    else:
        runner.train()
    return np.asarray(runner.message_hub.get_scalar('train/loss').data[0])


def test_resume_gives_the_uninterrupted_losses(tmp_path, cityscapes_root):
    # PSPNet's decode head has dropout: the resumed run must also restore torch's RNG, and
    # not see the draw the uninterrupted run's validation at iteration 2 (after the
    # checkpoint) took from it.
    cfg = write_segmentation_configs(str(tmp_path), cityscapes_root, 'pspnet')['config']
    full = run(cfg, str(tmp_path / 'full'), 'resume_full')
    assert len(full) == 4

    interrupted = str(tmp_path / 'interrupted')
    run(cfg, interrupted, 'resume_part1', crash_after=2)
    assert osp.isfile(osp.join(interrupted, 'iter_2.pth'))
    assert not osp.exists(osp.join(interrupted, 'iter_4.pth'))
    resumed = run(cfg, interrupted, 'resume_part2', '--resume')
    assert len(resumed) == 4  # history 1-2 restored from the checkpoint, 3-4 trained
    np.testing.assert_allclose(resumed[2:], full[2:], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(resumed[:2], full[:2])


def test_resume_from_a_bad_file_fails_before_training(tmp_path, cityscapes_root):
    cfg = write_segmentation_configs(str(tmp_path), cityscapes_root, 'pspnet')['config']
    train = load_tool('train')
    with pytest.raises(FileNotFoundError, match=r"--resume: checkpoint '.*missing.pth'"):
        train.build_runner([cfg, '--resume', str(tmp_path / 'missing.pth')])
    junk = tmp_path / 'junk.pth'
    junk.write_text('not a checkpoint')
    with pytest.raises(CheckpointError, match=r"--resume: '.*junk.pth' is not a readable"):
        train.build_runner([cfg, '--resume', str(junk)])
    with pytest.raises(CheckpointError, match=r"load_from: '.*junk.pth' is not a readable"):
        train.build_runner([cfg, '--cfg-options', f'load_from={junk}'])


def test_epoch_based_resume_with_data_workers(tmp_path, coco_root):
    """Issue 20: tiny RetinaNet, epoch-based, RandomFlip(prob=0.5), 2 data workers with the
    stock ``persistent_workers=True``; the resumed run has no seed in its config (as the
    stock configs), so it must take the checkpoint's."""
    cfg = write_retinanet_configs(str(tmp_path), coco_root)['config']
    options = ['train_cfg.max_epochs=2', 'default_hooks.checkpoint.interval=1',
               'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
               'train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=True']
    full = run(cfg, str(tmp_path / 'full'), 'epoch_full', options=options)
    assert len(full) == 4  # 4 images, 2 per batch, 2 epochs
    interrupted = str(tmp_path / 'interrupted')
    run(cfg, interrupted, 'epoch_part1', options=options, crash_after=1, by_epoch=True)
    assert torch.load(osp.join(interrupted, 'epoch_1.pth'))['meta']['seed'] == 0
    resumed = run(cfg, interrupted, 'epoch_part2', '--resume',
                  options=options + ['randomness.seed=None'])
    np.testing.assert_array_equal(resumed[:2], full[:2])
    np.testing.assert_allclose(resumed[2:], full[2:], rtol=0, atol=1e-6)


def test_epoch_based_resume_restores_numpy_and_python_random(tmp_path):
    """A data pipeline in the main process (num_workers=0) drawing from numpy's and
    python's global generators: epoch 2 of the resumed run draws what the uninterrupted
    run drew."""
    cfg = write_toy_config(str(tmp_path / 'toy.py'), length=2, augment=True, by_epoch=True,
                           length_of_run=3)
    full = run(cfg, str(tmp_path / 'full'), 'toy_full', options=())
    assert len(full) == 6 and len(set(full.tolist())) == 6
    interrupted = str(tmp_path / 'interrupted')
    run(cfg, interrupted, 'toy_part1', options=(), crash_after=1, by_epoch=True)
    resumed = run(cfg, interrupted, 'toy_part2', '--resume', options=())
    np.testing.assert_array_equal(resumed, full)
