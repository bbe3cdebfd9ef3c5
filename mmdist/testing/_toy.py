# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""A toy regression trained through tools/train.py: runs of the tools' machinery (hooks,
checkpoints, ranks) that build in milliseconds.

The config written by :func:`write_toy_config` imports this module (``custom_imports``),
so processes started by a test (gloo ranks, :func:`train_as_rank`) find the toy model and
dataset too.
"""
import importlib.util
import os
import os.path as osp
import random
import traceback
from typing import List

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS


@MODELS.register_module(force=True)
class ToyRegression(BaseModel):
    """``loss = mean((W x + b)^2)`` for a (dim, dim) linear layer; ``x``: (N, dim)."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.linear = torch.nn.Linear(dim, dim)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=self.linear(torch.stack(inputs)).square().mean())


@DATASETS.register_module(force=True)
class ToyDataset(BaseDataset):
    """``length`` vectors of size ``dim`` filled with ``fill``.

    Args:
        bad_index: this sample gets ``float(bad_value)`` (e.g. ``'nan'``) in place of 1.
        augment: scale each sample by ``numpy.random.uniform(0.5, 1.5)`` and add
            ``random.random()``: a data pipeline drawing from both global generators.
    """

    METAINFO = dict(classes=('toy', ))

    def __init__(self, length: int = 8, dim: int = 8, fill: float = 1.0, bad_index: int = -1,
                 bad_value: str = 'nan', augment: bool = False):
        self.length, self.dim, self.fill, self.augment = length, dim, fill, augment
        self.bad_index, self.bad_value = bad_index, float(bad_value)
        super().__init__(serialize_data=False, lazy_init=False)

    def load_data_list(self):
        return [dict(index=i) for i in range(self.length)]

    def prepare_data(self, idx):
        x = torch.full((self.dim, ), self.bad_value if idx == self.bad_index else self.fill)
        if self.augment:
            x = x * float(np.random.uniform(0.5, 1.5)) + random.random()
        return dict(inputs=x)


def write_toy_config(path: str, dim: int = 8, length: int = 8, fill: float = 1.0,
                     bad_index: int = -1, bad_value: str = 'nan', augment: bool = False,
                     by_epoch: bool = False, length_of_run: int = 4) -> str:
    """A config training :class:`ToyRegression` on :class:`ToyDataset` (batch 1, SGD with
    momentum, no shuffling, a checkpoint every iteration or epoch; ``length_of_run``
    iterations or epochs)."""
    schedule = (f'dict(by_epoch=True, max_epochs={length_of_run})' if by_epoch else
                f'dict(by_epoch=False, max_iters={length_of_run})')
    text = f'''
custom_imports = dict(imports=['mmdist.testing._toy'], allow_failed_imports=False)
model = dict(type='ToyRegression', dim={dim})
train_dataloader = dict(
    dataset=dict(type='ToyDataset', length={length}, dim={dim}, fill={fill},
                 augment={augment}, bad_index={bad_index}, bad_value={bad_value!r}),
    sampler=dict(type='DefaultSampler', shuffle=False), batch_size=1, num_workers=0,
    collate_fn=dict(type='pseudo_collate'))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
train_cfg = {schedule}
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch={by_epoch}),
                     logger=dict(type='LoggerHook', interval=1))
visualizer = dict(type='Visualizer', name='toy')
randomness = dict(seed=0)
'''
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def train_as_rank(rank: int, world_size: int, port: int, train_script: str, argv: List[str],
                  out_dir: str) -> None:
    """One gloo rank running ``python train_script argv --launcher pytorch`` (what
    torchrun starts, with ``tools/train.py``); writes ``finished`` or the exception with its
    traceback to ``out_dir/rank<rank>.txt``. Defined here, not in a test module, so that
    the spawned process imports only this light module."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location('mmdist_train_as_rank', train_script)
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    try:
        train.main([*argv, '--launcher', 'pytorch'])
        outcome = 'finished'
    except Exception as err:  # noqa: BLE001 - reported to the parent process
        outcome = f'{type(err).__name__}: {err}\n{traceback.format_exc()}'
    finally:
        train.shutdown_distributed()
    with open(osp.join(out_dir, f'rank{rank}.txt'), 'w') as f:
        f.write(outcome)
