# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Warnings about a resumed checkpoint whose stored config cannot be compared (the checks
on real runs are in tests/test_tools/test_checkpoint_inputs.py)."""
import pytest
from mmengine.config import Config

from mmdist.utils import run_checkpoint
from mmdist.utils.launch import RunCheckpoint

SOURCE = RunCheckpoint('iter_2.pth', '--resume', True)
CURRENT = Config(dict(optim_wrapper=dict(optimizer=dict(lr=0.1)), model=dict(loss_x=dict(
    loss_weight=2.0))))


@pytest.fixture
def logged(monkeypatch):
    messages = []
    monkeypatch.setattr(run_checkpoint, 'print_log', lambda msg, *a, **k: messages.append(msg))
    return messages


def test_a_checkpoint_without_a_stored_config_is_reported(logged):
    run_checkpoint.warn_config_changes(CURRENT, {'iter': 2}, SOURCE, 'iteration 2')
    assert logged == ["--resume: the config of the checkpoint cannot be read (no meta['cfg']): "
                      'settings changed since it was written are not checked']


def test_entries_that_are_not_literals_are_named_and_the_others_compared(logged):
    text = ('optim_wrapper = dict(optimizer=dict(lr=0.01))\n'
            'model = dict(loss_x=dict(type=DISTLoss, loss_weight=1.0))\n')
    run_checkpoint.warn_config_changes(CURRENT, {'cfg': text}, SOURCE, 'iteration 2')
    assert logged[0] == ("--resume: the checkpoint's config holds values other than literals "
                         'in model: changes to them since it was written are not checked')
    assert len(logged) == 2 and logged[1].startswith(
        '--resume from iteration 2: optim_wrapper.optimizer.lr: 0.01 -> 0.1: not used')
