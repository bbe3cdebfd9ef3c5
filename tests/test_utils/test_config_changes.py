# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Reading a checkpoint's stored config without running it, and the settings that differ
on resume."""
from mmengine.config import Config

from mmdist.utils.config_changes import (UNREADABLE, flatten, read_config_text,
                                         resume_config_changes)

STORED = '''
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=4)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9), clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=4)]
train_dataloader = dict(batch_size=2, num_workers=0)
model = dict(type='SegmentationDistiller', loss_decode=dict(type='DISTLoss', loss_weight=1.0),
             student=dict(decode_head=dict(num_classes=19, loss_decode=[
                 dict(type='CrossEntropyLoss', loss_weight=1.0)])))
work_dir = './work_dirs/x'
'''


def test_the_stored_config_is_read_without_running_it(tmp_path):
    marker = tmp_path / 'ran'
    text = STORED + (f"evil = __import__('os').system('touch {marker}')\n"
                     'lazy = dict(type=print, n=1)\n'
                     "scales = ((64, 32), {'a b': -1, 'c': (True, None)})\n")
    entries = read_config_text(text)
    assert not marker.exists()
    assert entries['evil'] is UNREADABLE and entries['lazy'] is UNREADABLE
    assert entries['scales'] == ((64, 32), {'a b': -1, 'c': (True, None)})
    # The same values as mmengine's own (executing) parser, for what mmengine writes.
    parsed = Config.fromstring(STORED, '.py').to_dict()
    assert {k: entries[k] for k in parsed} == parsed
    assert set(entries) == set(parsed) | {'evil', 'lazy', 'scales'}
    assert Config.fromstring(Config(parsed).pretty_text, '.py').to_dict() == read_config_text(
        Config(parsed).pretty_text)


def test_flatten():
    assert flatten(dict(b=1, c=[dict(d=2)], e=(1, 2), f=[[1], [2, 3]]), 'a') == {
        'a.b': 1, 'a.c[0].d': 2, 'a.e': [1, 2], 'a.f[0]': [1], 'a.f[1]': [2, 3]}


def test_only_the_settings_that_matter_are_reported_with_their_effect():
    stored = read_config_text(STORED)
    current = Config.fromstring(STORED, '.py').to_dict()
    assert resume_config_changes(stored, current, 'iteration 2') == []
    current['train_cfg'].update(max_iters=8, val_interval=1)  # val_interval: not compared
    current['optim_wrapper']['optimizer'].update(lr=0.02, weight_decay=5e-4)
    current['optim_wrapper']['clip_grad'] = dict(max_norm=1)
    current['param_scheduler'][0]['end'] = 8
    current['train_dataloader'].update(batch_size=4, num_workers=2)
    current['model']['loss_decode']['loss_weight'] = 3.0
    current['model']['student']['decode_head']['loss_decode'][0]['loss_weight'] = 0.5
    current['model']['student']['decode_head']['num_classes'] = 7  # the fit check's job
    current['work_dir'] = './elsewhere'
    changes = {c.key: c for c in resume_config_changes(stored, current, 'iteration 2')}
    assert sorted(changes) == [
        'model.loss_decode.loss_weight',
        'model.student.decode_head.loss_decode[0].loss_weight',
        'optim_wrapper.clip_grad.max_norm', 'optim_wrapper.optimizer.lr',
        'optim_wrapper.optimizer.weight_decay', 'param_scheduler[0].end',
        'train_cfg.max_iters', 'train_dataloader.batch_size'
    ]
    lr = changes['optim_wrapper.optimizer.lr']
    assert (lr.stored, lr.current) == (0.01, 0.02)
    assert lr.describe().startswith("optim_wrapper.optimizer.lr: 0.01 -> 0.02: not used: "
                                    'resuming restores the optimizer state')
    assert changes['optim_wrapper.optimizer.weight_decay'].stored is None
    assert 'schedulers\' state' in changes['param_scheduler[0].end'].effect
    assert changes['train_cfg.max_iters'].effect.startswith('training ends at the new value')
    for key in ('model.loss_decode.loss_weight', 'train_dataloader.batch_size',
                'optim_wrapper.clip_grad.max_norm'):
        assert changes[key].effect.startswith('applies after iteration 2'), key


def test_an_entry_that_is_not_literal_is_not_compared():
    """A lazy config's ``type=DISTLoss`` (a class): the stored ``model`` cannot be read, so
    its settings are not reported as changed."""
    stored = read_config_text(STORED.replace("type='DISTLoss'", 'type=DISTLoss'))
    assert stored['model'] is UNREADABLE
    current = Config.fromstring(STORED, '.py').to_dict()
    current['optim_wrapper']['optimizer']['lr'] = 0.02
    assert [c.key for c in resume_config_changes(stored, current, 'iteration 2')] == [
        'optim_wrapper.optimizer.lr']
