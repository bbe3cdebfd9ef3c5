# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""projects/segformer_teacher: its configs build the demo's student with a SegFormer
teacher at another output stride, and its table shows the numbers it is given."""
import importlib.util
import os.path as osp

import pytest
import torch
from demo.paths import ROOT
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmdist.models.utils.teacher import RANDOM_TEACHER
from mmdist.registry import MODELS

PROJECT = osp.join(ROOT, 'projects', 'segformer_teacher')

pytestmark = pytest.mark.usefixtures('one_cpu_thread')


def _load_script():
    spec = importlib.util.spec_from_file_location('segformer_teacher_run',
                                                  osp.join(PROJECT, 'run.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dist_config_pairs_the_demo_student_with_a_segformer_teacher():
    cfg = Config.fromfile(osp.join(PROJECT, 'configs', 'student_dist_segformer.py'))
    cfg.model.teacher_ckpt = RANDOM_TEACHER
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model).train()
    assert type(model.teacher.backbone).__name__ == 'MixVisionTransformer'
    assert model.teacher_aux.head is model.teacher_decode.head  # no teacher auxiliary head
    torch.manual_seed(0)
    samples = [SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 7, (1, 64, 128))),
                             metainfo=dict(img_shape=(64, 128), pad_shape=(64, 128)))
               for _ in range(2)]
    with torch.no_grad():
        teacher_logits, _ = model.teacher_forward(torch.randn(2, 3, 64, 128), samples)
    assert teacher_logits.shape == (2, 7, 16, 32)  # 1/4; the student's are 1/8
    losses = model(torch.randn(2, 3, 64, 128), samples, mode='loss')
    assert torch.isfinite(losses['loss_dist_decode']) and torch.isfinite(losses['loss_dist_aux'])


def test_report_shows_means_stds_and_seeds():
    script = _load_script()

    def run(miou, params=1e6, iters=500):
        return dict(params=params, iters=iters, metrics=dict(mIoU=miou, mAcc=1.0, aAcc=2.0))

    results = dict(teachers={name: run(60.0, 3e6, 1000) for name in script.TEACHERS})
    for offset, name in enumerate(script.STUDENTS):
        results[name] = {0: run(20.0 + offset), 1: run(22.0 + offset)}
    table = script.report(results, [0, 1])
    assert '| student | 1.00M | 500 | 21.0 ± 1.4 | 1.0 ± 0.0 | 2.0 ± 0.0 |  |' in table
    assert '| student + DIST (SegFormer) | 1.00M | 500 | 22.0 ± 1.4 | 1.0 ± 0.0 | 2.0 ± 0.0 | ' \
        '1.0 ± 0.0 |' in table
    assert '| 1 | 22.0 | 23.0 | 24.0 | 25.0 |' in table
    assert '| SegFormer teacher | 3.00M | 1000 | 60.0 | 1.0 | 2.0 |  |' in table


def test_a_run_is_reused_only_with_the_same_cpu_settings(tmp_path, monkeypatch):
    """A finished run is read back when config, options and CPU settings (pinned or not)
    match; with other CPU settings it trains again (the numbers differ)."""
    import json
    script = _load_script()
    config = script.demo_config('seg_student.py')
    stored = dict(key=dict(config=osp.relpath(config, ROOT), options=['a=1'],
                           cpu=dict(pinned=True)), metrics=dict(mIoU=1.0))
    with open(tmp_path / 'result.json', 'w', encoding='utf-8') as f:
        json.dump(stored, f)
    assert script.train_and_test(config, str(tmp_path), ['a=1'], dict(pinned=True)) == stored

    def train_again(name):
        raise RuntimeError(f'trains again ({name})')

    monkeypatch.setattr(script, 'load_tool', train_again)
    with pytest.raises(RuntimeError, match='trains again'):
        script.train_and_test(config, str(tmp_path), ['a=1'], dict(pinned=False))
