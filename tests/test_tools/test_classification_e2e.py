# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""End to end on synthetic ImageNet-format data: shipped classification configs, shrunk;
and the shipped configs checked against mmpretrain's own model zoo metadata."""
import glob
import os.path as osp

import mmpretrain
import pytest
import torch
import yaml
from demo.paths import ROOT as REPO, load_tool
from mmengine.config import Config
from mmengine.fileio import load

from mmdist.testing._classification import (CLS_CONFIGS, make_imagenet_shapes,
                                            write_classification_configs)
from mmdist.testing._e2e import (assert_teacher_is_checkpoint, export_run_student, library_test,
                                 train_then_test)

pytestmark = pytest.mark.usefixtures('one_cpu_thread')

MMPRETRAIN_CONFIGS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')
#: mmpretrain's Swin schedule starts its cosine decay after 20 warm-up epochs; one epoch
#: here, so keep only the warm-up.
#: The shipped learning rates are for 256 (Swin-T: 1024) images per step; the tests train
#: with 4, so the rate is scaled by mmengine's ``auto_scale_lr`` (as ``--auto-scale-lr``
#: does). With the unscaled rate every student ended with the one-hot score (0, 0, 0, 1)
#: for every image, and equal scores would not show equal students.
SCALED_LR = 'auto_scale_lr = dict(enable=True)\n'
ONE_EPOCH_WARMUP = ("param_scheduler = [dict(type='LinearLR', start_factor=1e-3, by_epoch=True, "
                    'begin=0, end=1, convert_to_iter_based=True)]\n')


@pytest.fixture(scope='module')
def imagenet_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet_shapes'))
    make_imagenet_shapes(root)
    return root


@pytest.mark.parametrize('shipped, loss_type, batch_augments, extra', [
    ('dist_resnet34_resnet18_8xb32_in1k', 'DISTLoss', None, ''),
    ('kd_resnet34_resnet18_8xb32_in1k', 'KDLoss', None, ''),
    ('dist_resnet50_mobilenet-v2_8xb32_in1k', 'DISTLoss', None, ''),
    ('dist_swin-large-in21k-pre_swin-tiny_8xb128_in1k', 'DISTLoss', ['Mixup', 'CutMix'],
     ONE_EPOCH_WARMUP),
])
def test_classification_distillation_train_then_test(tmp_path, imagenet_root, shipped,
                                                     loss_type, batch_augments, extra):
    """Train and test with mmdist's tools; the exported student, evaluated by
    mmpretrain's own tools/test.py (its test pipeline and Accuracy metric), gives the
    same scores, image for image, and the same accuracy."""
    paths = write_classification_configs(str(tmp_path), imagenet_root, shipped,
                                         extra=extra + SCALED_LR)
    ours_out, plain_out = str(tmp_path / 'ours.pkl'), str(tmp_path / 'plain.pkl')
    runner, metrics = train_then_test(load_tool('train'), load_tool('test'), paths['config'],
                                      str(tmp_path / 'work'), ['loss_dist_cls'],
                                      ['--out', ours_out])
    assert_teacher_is_checkpoint(runner, paths)
    exported = export_run_student(load_tool('model_converters/export_student'),
                                  paths['config'], str(tmp_path / 'work'),
                                  str(tmp_path / 'export'))
    plain = library_test('mmpretrain', exported['config'], exported['checkpoint'],
                         str(tmp_path / 'plain_test'), out=plain_out)
    assert plain['accuracy/top1'] == metrics['accuracy/top1']
    ours, theirs = load(ours_out), load(plain_out)
    assert [s['img_path'] for s in ours] == [s['img_path'] for s in theirs] and len(ours) == 8
    for a, b in zip(ours, theirs):
        assert a['pred_score'].max() < 0.99  # not saturated: equal scores mean equal logits
        assert torch.equal(a['pred_score'], b['pred_score'])
        assert torch.equal(a['pred_label'], b['pred_label'])
    model = runner.model
    assert type(model.loss_cls).__name__ == loss_type
    if loss_type == 'KDLoss':
        assert model.loss_cls.tau == 4.0  # the paper's KD baseline
    augments = model.data_preprocessor.batch_augments  # Swin-T: mmpretrain's recipe
    assert ([type(a).__name__ for a in augments.augments] if augments else None) == \
        batch_augments


def _zoo_entries(config: str):
    """mmpretrain metafile entries whose ``Config`` is ``configs/<config>``."""
    folder = osp.dirname(config)
    with open(osp.join(MMPRETRAIN_CONFIGS, folder, 'metafile.yml'), encoding='utf-8') as f:
        models = yaml.safe_load(f)['Models']
    return [m for m in models if m.get('Config') == f'configs/{config}']


def test_shipped_configs_match_mmpretrain_zoo_and_metafile():
    """Every teacher checkpoint URL is the Weights mmpretrain's metafile gives for the
    teacher config; the dist_cls metafile lists exactly the shipped configs and
    model-index.yml imports it."""
    shipped = sorted(glob.glob(osp.join(CLS_CONFIGS, '*.py')))
    distillers = [p for p in shipped if not osp.basename(p).startswith('baseline_')]
    assert len(shipped) == 18 and len(distillers) == 16
    for path in shipped:  # the baselines: the student alone on a stock mmpretrain recipe
        if path not in distillers:
            student = Config.fromfile(path).model
            assert student.type == 'ImageClassifier' and student.head.num_classes == 1000
    for path in distillers:
        cfg = Config.fromfile(path)
        assert cfg.model.type == 'mmdist.ClassificationDistiller', path
        scope, teacher = cfg.model.teacher_cfg.split('::')
        assert scope == 'mmpretrain', path
        weights = {m['Weights'] for m in _zoo_entries(teacher)}
        assert cfg.model.teacher_ckpt in weights, (path, weights)
        assert cfg.model.student.type == 'ImageClassifier'
        assert cfg.model.student.head.num_classes == cfg.data_preprocessor.num_classes == 1000

    with open(osp.join(CLS_CONFIGS, 'metafile.yml'), encoding='utf-8') as f:
        listed = [m['Config'] for m in yaml.safe_load(f)['Models']]
    assert sorted(listed) == [f'configs/dist_cls/{osp.basename(p)}' for p in shipped]
    with open(osp.join(REPO, 'model-index.yml'), encoding='utf-8') as f:
        assert 'configs/dist_cls/metafile.yml' in yaml.safe_load(f)['Import']
