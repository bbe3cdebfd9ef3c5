# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""End to end on synthetic Cityscapes data: both shipped segmentation configs, shrunk."""
import math

import pytest
from e2e_helpers import assert_teacher_is_checkpoint, train_then_test
from segmentation_helpers import write_segmentation_configs


@pytest.mark.parametrize('student', ['deeplabv3', 'pspnet'])
def test_segmentation_distillation_train_then_test(tmp_path, cityscapes_root, student):
    paths = write_segmentation_configs(str(tmp_path), cityscapes_root, student)
    runner, metrics = train_then_test(paths['config'], str(tmp_path / 'work'),
                                      ['loss_dist_decode', 'loss_dist_aux'])
    assert math.isfinite(metrics['mIoU']) and 0.0 <= metrics['mIoU'] <= 100.0
    assert_teacher_is_checkpoint(runner, paths)
