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
