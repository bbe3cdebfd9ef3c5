# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""weights_only loading: mmengine checkpoints load, anything else is still refused."""
import collections
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import mmdist  # noqa: F401  (installs the allow-list)


def test_mmengine_message_hub_round_trips_with_weights_only(tmp_path):
    hub = MessageHub('test_ckpt_hub')
    for value in (1.0, 2.0, 4.0):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', 3)
    path = str(tmp_path / 'ckpt.pth')
    torch.save(dict(state_dict={'w': torch.ones(2)}, message_hub=hub.state_dict(),
                    meta=dict(seed=np.int64(3), hist=np.arange(3.0))), path)
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(7.0 / 3)
    assert buffer.statistics('max') == 4.0
    np.testing.assert_array_equal(loaded['meta']['hist'], np.arange(3.0))


class _GetattrPayload:

    def __reduce__(self):
        return (getattr, (collections.Counter, 'fromkeys'))


class _SystemPayload:

    def __reduce__(self):
        return (os.system, ('echo should-not-run',))


@pytest.mark.parametrize('payload', [_GetattrPayload(), _SystemPayload()])
def test_other_globals_are_still_refused(tmp_path, payload):
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


# ---------------------------------------------------------------------------- loading policy
import argparse  # noqa: E402

from mmengine.runner.checkpoint import CheckpointLoader  # noqa: E402

from mmdist.utils.checkpoint import (ALLOW_PICKLE_ENV, CheckpointError,  # noqa: E402
                                     load_from_http, read_checkpoint)


def _legacy_checkpoint(tmp_path):
    """A checkpoint whose meta holds an object outside the allow-list (argparse.Namespace)."""
    path = str(tmp_path / 'legacy.pth')
    torch.save(dict(state_dict={'w': torch.ones(1)}, meta=dict(args=argparse.Namespace(lr=1))),
               path)
    return path


def test_legacy_pickle_needs_explicit_opt_in(tmp_path, monkeypatch):
    path = _legacy_checkpoint(tmp_path)
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    with pytest.raises(CheckpointError, match=f'argparse.Namespace.*{ALLOW_PICKLE_ENV}=1'):
        read_checkpoint(path)
    monkeypatch.setenv(ALLOW_PICKLE_ENV, '1')
    with pytest.warns(UserWarning, match='full pickle'):
        loaded = read_checkpoint(path)
    assert loaded['meta']['args'].lr == 1


def test_not_a_checkpoint(tmp_path):
    tensor_file = str(tmp_path / 'tensor.pth')
    torch.save(torch.ones(3), tensor_file)
    with pytest.raises(CheckpointError, match='holds a Tensor, not a checkpoint dict'):
        read_checkpoint(tensor_file)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_checkpoint(str(tmp_path / 'nothing.pth'))
    junk = tmp_path / 'junk.pth'
    junk.write_text('not a checkpoint')
    with pytest.raises(CheckpointError, match=r"^'.*junk\.pth' is not a readable PyTorch "
                       'checkpoint'):
        read_checkpoint(str(junk))


def test_mmengine_loads_local_and_url_checkpoints_through_the_policy(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    assert CheckpointLoader._get_checkpoint_loader('/any/path.pth') is not None
    assert CheckpointLoader._get_checkpoint_loader('/x.pth').__module__ == \
        'mmdist.utils.checkpoint'
    assert CheckpointLoader._get_checkpoint_loader('https://host/x.pth') is load_from_http
    # A downloaded file is read with weights_only too (torch.hub's default would unpickle).
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    url = 'file://' + _legacy_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match='argparse.Namespace'):
        load_from_http(url)
    good = str(tmp_path / 'good.pth')
    torch.save(dict(state_dict={'w': torch.arange(3.0)}), good)
    assert torch.equal(load_from_http('file://' + good)['state_dict']['w'], torch.arange(3.0))


# ----------------------------------------------------------------- the getattr allow-list
from mmdist.utils.checkpoint import HISTORY_BUFFER_STATISTICS  # noqa: E402


class _HistoryBufferAttribute:
    """Pickles as ``getattr(HistoryBuffer, name)``, as HistoryBuffer's statistics do."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return (getattr, (HistoryBuffer, self.name))


@pytest.mark.parametrize('name', ['__init__', '__class__', '__reduce__', 'update'])
def test_getattr_is_refused_for_other_history_buffer_attributes(tmp_path, name):
    path = str(tmp_path / 'attr.pth')
    torch.save({'x': _HistoryBufferAttribute(name)}, path)
    with pytest.raises(pickle.UnpicklingError, match=f"refusing getattr.*'{name}'"):
        torch.load(path, weights_only=True)
    with pytest.raises(CheckpointError, match=f"refusing getattr.*'{name}'"):
        read_checkpoint(path)


def test_getattr_is_allowed_for_the_history_buffer_statistics(tmp_path):
    path = str(tmp_path / 'stats.pth')
    torch.save({name: _HistoryBufferAttribute(name) for name in HISTORY_BUFFER_STATISTICS},
               path)
    loaded = read_checkpoint(path)
    assert HISTORY_BUFFER_STATISTICS == ('min', 'max', 'current', 'mean')
    for name in HISTORY_BUFFER_STATISTICS:
        assert loaded[name] is getattr(HistoryBuffer, name)


# ----------------------------------------------------------------- every scheme, one policy
import os.path as osp  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

from mmengine.runner.checkpoint import (get_external_models, get_mmcls_models,  # noqa: E402
                                        get_torchvision_models, load_checkpoint)
from torch import nn  # noqa: E402

from mmdist.utils import checkpoint as policy  # noqa: E402


class _TouchMarker:
    """A pickle that runs ``touch MARKER`` when unpickled with full pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def _malicious_checkpoint(path, marker):
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save({'state_dict': {'weight': torch.ones(1, 1)}, 'x': _TouchMarker(marker)}, path)
    return path


def _hub_cache_file(source):
    """Where mmengine's loader for ``source`` finds it in torch hub's cache."""
    scheme, name = source.split('://')
    tables = dict(torchvision=get_torchvision_models, modelzoo=get_torchvision_models,
                  mmcls=get_mmcls_models)
    tables['open-mmlab'] = get_external_models
    url = tables[scheme]()[name]
    return osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(url))


@pytest.mark.parametrize('source', ['torchvision://resnet18', 'modelzoo://resnet18',
                                    'open-mmlab://resnet50_v1c', 'mmcls://resnet18'])
def test_scheme_checkpoints_load_with_weights_only(source, tmp_path, monkeypatch):
    """A poisoned file in torch hub's cache is refused, not executed, for every scheme that
    mmengine resolves to a download (the path of stock ``init_cfg=Pretrained`` backbones)."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    marker = tmp_path / 'MARKER'
    cached = _malicious_checkpoint(_hub_cache_file(source), marker)
    if source == 'torchvision://resnet18':
        assert cached.endswith('hub/checkpoints/resnet18-f37072fd.pth')
    with pytest.raises(CheckpointError, match=re.escape(source) + r'.*read from.*outside the '
                       f'weights_only allow-list.*system.*{ALLOW_PICKLE_ENV}=1'):
        load_checkpoint(nn.Linear(1, 1), source)  # mmengine's API, as init_cfg uses it
    assert not marker.exists()
    assert torch.load is policy._TORCH_LOAD  # swapped back after the load


def test_scheme_checkpoints_keep_the_pickle_opt_in(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    cached = _hub_cache_file('torchvision://resnet18')
    os.makedirs(osp.dirname(cached))
    torch.save(dict(state_dict={'weight': torch.full((1, 1), 5.0)},
                    meta=dict(args=argparse.Namespace(lr=1))), cached)
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    with pytest.raises(CheckpointError, match='argparse.Namespace'):
        CheckpointLoader.load_checkpoint('torchvision://resnet18')
    monkeypatch.setenv(ALLOW_PICKLE_ENV, '1')
    with pytest.warns(UserWarning, match='torchvision://resnet18.*full pickle'):
        loaded = CheckpointLoader.load_checkpoint('torchvision://resnet18')
    assert loaded['meta']['args'].lr == 1


def test_pavi_and_later_registered_schemes_follow_the_policy(tmp_path, monkeypatch):
    """The policy wraps mmengine's scheme dispatch, not a list of known schemes."""
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    marker = tmp_path / 'MARKER'
    evil = _malicious_checkpoint(str(tmp_path / 'evil.pth'), marker)

    class _Model:  # what pavi.modelcloud.get returns
        name = 'evil.pth'

        @staticmethod
        def download(dst):
            with open(evil, 'rb') as src, open(dst, 'wb') as out:
                out.write(src.read())

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda path: _Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    with pytest.raises(CheckpointError, match="'pavi://runs/evil.pth'.*allow-list"):
        CheckpointLoader.load_checkpoint('pavi://runs/evil.pth')

    def load_from_mystore(filename, map_location=None):  # a careless third-party loader
        return torch.load(evil, map_location=map_location, weights_only=False)

    CheckpointLoader.register_scheme('mystore://', load_from_mystore)
    try:
        with pytest.raises(CheckpointError, match="'mystore://x.pth'.*allow-list"):
            CheckpointLoader.load_checkpoint('mystore://x.pth')
    finally:
        CheckpointLoader._schemes.pop('mystore://')
    assert not marker.exists()
