# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The classification ladders' method configs carry the official ImageNet recipe
(hunto/image_classification_sota ``configs/strategies/distill/resnet_dist.yaml``: DIST 2
on top of the cross-entropy at 1; ``resnet_kdt4.yaml``: KD 1 on top of the cross-entropy
at 0.9), and the paper-regime ladder has the shape the study promises: the student alone
wrapped unchanged by every method, four teachers, and each stronger-recipe teacher the
same network as a plain one with a longer schedule, label smoothing and stronger
augmentation."""
import pytest
from mmengine.config import Config

from projects.teacher_ladder.teacher_ladder.ladder import TASKS

CLASSIFICATION = ['cls', 'cls_paper']
# method config -> (loss type, tau, loss weight, the student's cross-entropy weight)
OFFICIAL = {'student_dist.py': ('mmdist.DISTLoss', 1.0, 2.0, 1.0),
            'student_kd_tau4.py': ('mmdist.KDLoss', 4.0, 1.0, 0.9),
            'student_kd_tau1.py': ('mmdist.KDLoss', 1.0, 1.0, 0.9)}


@pytest.mark.parametrize('task', CLASSIFICATION)
def test_methods_follow_the_official_recipe(task):
    ladder = TASKS[task]
    student = Config.fromfile(ladder.config(ladder.student)).model
    official = [m for m in ladder.methods if m.name != 'dist_w1']
    assert sorted(m.config for m in official) == sorted(OFFICIAL)
    for method in official:
        model = Config.fromfile(ladder.config(method.config)).model
        loss_type, tau, weight, ce_weight = OFFICIAL[method.config]
        assert model.type == 'mmdist.ClassificationDistiller'
        assert (model.loss_cls.type, model.loss_cls.tau, model.loss_cls.loss_weight) == (
            loss_type, tau, weight), method.config
        if loss_type == 'mmdist.DISTLoss':
            assert (model.loss_cls.inter_loss_weight, model.loss_cls.intra_loss_weight) == (
                1.0, 1.0)
        assert model.student.head.loss.loss_weight == ce_weight, method.config
        # Apart from the cross-entropy weight, the student is the student-alone config.
        wrapped = model.student.to_dict()
        wrapped['head']['loss'].pop('loss_weight')
        alone = student.to_dict()
        alone['head']['loss'].pop('loss_weight', None)
        assert wrapped == alone, method.config


def test_dist_weight_1_differs_from_dist_in_the_weight_only():
    ladder = TASKS['cls']
    assert [m.name for m in ladder.methods][-2:] == ['dist_w1', 'dist']
    weight_1, weight_2 = (Config.fromfile(ladder.config(m.config)).model.to_dict()
                          for m in ladder.methods[-2:])
    assert (weight_1['loss_cls'].pop('loss_weight'),
            weight_2['loss_cls'].pop('loss_weight')) == (1.0, 2.0)
    assert weight_1 == weight_2


def _network(cfg: Config) -> tuple:
    backbone = cfg.model.backbone
    return backbone.type, backbone.depth, backbone.base_channels


def test_paper_ladder_pairs_plain_and_stronger_recipe_teachers():
    ladder = TASKS['cls_paper']
    assert len(ladder.teachers) >= 4
    teachers = {t.name: Config.fromfile(ladder.config(t.config)) for t in ladder.teachers}
    strong = [name for name in teachers if name.endswith('-strong')]
    assert len(strong) >= 1
    for name in strong:
        cfg, plain = teachers[name], teachers[name[:-len('-strong')]]
        assert _network(cfg) == _network(plain)
        assert cfg.train_cfg.max_epochs == 2 * plain.train_cfg.max_epochs
        assert plain.model.head.loss.type == 'CrossEntropyLoss'
        assert cfg.model.head.loss.type == 'LabelSmoothLoss'
        assert cfg.model.head.loss.label_smooth_val == 0.1
        steps = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
        plain_steps = [t['type'] for t in plain.train_dataloader.dataset.pipeline]
        assert 'RandAugment' in steps and 'RandomResizedCrop' in steps
        assert 'RandAugment' not in plain_steps
        # Same data, optimiser and batch: only the recipe differs.
        assert cfg.optim_wrapper == plain.optim_wrapper
        assert cfg.train_dataloader.batch_size == plain.train_dataloader.batch_size
