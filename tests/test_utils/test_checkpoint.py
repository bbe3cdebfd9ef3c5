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
