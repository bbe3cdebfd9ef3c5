# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""``import mmdist`` stays light; the losses README shows import from the package."""
import subprocess
import sys

import pytest

import mmdist
from mmdist.models.distillers import DetectionDistiller
from mmdist.models.losses import DISTLoss, KDLoss


def test_import_mmdist_does_not_import_the_task_libraries():
    code = ('import sys, mmdist\n'
            'print([m for m in ("mmdet", "mmseg", "mmpretrain") if m in sys.modules])\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == '[]'


def test_losses_and_distillers_import_from_the_package():
    from mmdist import DISTLoss as dist_loss_class
    from mmdist import KDLoss as kd_loss_class
    assert dist_loss_class is DISTLoss and kd_loss_class is KDLoss
    assert mmdist.DetectionDistiller is DetectionDistiller
    with pytest.raises(AttributeError, match="module 'mmdist' has no attribute 'DISTLos'"):
        mmdist.DISTLos  # noqa: B018
