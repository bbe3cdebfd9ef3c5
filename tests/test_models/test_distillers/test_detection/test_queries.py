# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DetectionDistiller on DETR-family pairs (DINO, Deformable DETR, DETR): where the
gradients go, that the teacher never changes, that the student's own training is that of
the plain mmdet model, and the build-time errors. The loss values are checked against an
independent computation in tests/test_models/test_distillers/test_loss_values.py."""
import copy

import pytest
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

from mmdist.models.utils.teacher import RANDOM_TEACHER
from mmdist.testing._detection import (build_distiller, step_changes_the_student_only, train_batch,
                                       write_config, write_detr_configs, write_retinanet_configs)

pytestmark = pytest.mark.usefixtures('one_cpu_thread')  # tests/conftest.py

PAIRS = ('dino', 'deformable', 'dino_deformable', 'detr')
BOXES = dict(loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
             loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0))


@pytest.fixture(scope='module')
def detr(tmp_path_factory, coco_root):
    tmp = str(tmp_path_factory.mktemp('queries'))
    softmax = dict(loss_cls=dict(activation='softmax'))
    return {pair: write_detr_configs(tmp, coco_root, pair, **(softmax if pair == 'detr' else {}))
            for pair in PAIRS}




@pytest.mark.parametrize('pair', PAIRS)
def test_gradient_reaches_the_student_only_and_the_teacher_never_changes(detr, pair):
    """The distillation losses alone give the student's backbone and final class branch a
    gradient and no teacher parameter one; after an SGD step on the full loss the
    teacher's weights and buffers are bit-identical, the student's have changed, and the
    teacher is in neither the optimizer's parameters nor the checkpoint."""
    model, cfg = build_distiller(detr[pair]['config'], **BOXES)
    assert type(model.unit).__name__ == 'HungarianQueries'
    model.init_weights()
    model.train()
    data = train_batch(model, cfg)
    losses = model(**data, mode='loss')
    distill = [losses[k] for k in ('loss_dist_cls', 'loss_dist_bbox', 'loss_dist_iou')]
    assert all(torch.isfinite(v) and v > 0 for v in distill)
    sum(distill).backward(retain_graph=True)
    head = model.student.bbox_head
    final_classifier = (head.cls_branches[model.student.decoder.num_layers - 1]
                        if hasattr(head, 'cls_branches') else head.fc_cls)
    for module in (model.student.backbone, final_classifier):
        assert sum(p.grad.abs().sum() for p in module.parameters() if p.grad is not None) > 0
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in model.parameters()}
    step_changes_the_student_only(model, losses)


@pytest.mark.parametrize('pair', ['dino', 'deformable'])
def test_student_losses_are_the_plain_models_at_distillation_weight_zero(detr, pair, tmp_path):
    """With every distillation weight 0, the student's losses are exactly those of the
    plain mmdet model (built from the student's own config, the same weights) on the same
    batch and random state (DINO's denoising queries, Deformable DETR's dropout), and the
    loss_dist_* keys are 0."""
    zero = dict(loss_cls=dict(loss_weight=0.0),
                loss_bbox=dict(type='mmdet.L1Loss', loss_weight=0.0),
                loss_iou=dict(type='mmdet.GIoULoss', loss_weight=0.0), query_layers='all')
    model, cfg = build_distiller(detr[pair]['config'], **zero)
    model.init_weights()
    model.train()
    ckpt = str(tmp_path / 'student.pth')
    torch.save(dict(state_dict=model.student.state_dict()), ckpt)
    with DefaultScope.overwrite_default_scope('mmdet'):
        plain = MMDET_MODELS.build(Config.fromfile(detr[pair]['student_cfg']).model)
    load_checkpoint(plain, ckpt, map_location='cpu', strict=True)
    plain.train()
    data = train_batch(model, cfg)
    torch.manual_seed(3)
    losses = model(**copy.deepcopy(data), mode='loss')
    torch.manual_seed(3)
    alone = plain(**copy.deepcopy(data), mode='loss')
    assert set(losses) == set(alone) | {'loss_dist_cls', 'loss_dist_bbox', 'loss_dist_iou'}
    for key in ('loss_dist_cls', 'loss_dist_bbox', 'loss_dist_iou'):
        assert losses[key].item() == 0.0
    assert any(key.startswith('dn_') for key in alone) == (pair == 'dino')
    for key, value in alone.items():
        torch.testing.assert_close(losses[key], value, rtol=0, atol=0)


def _model(tmp_path, name, base, model):
    return write_config(str(tmp_path / f'{name}.py'), f'_base_ = [{base!r}]\nmodel = {model!r}\n')


def test_unsupported_pairs_and_options_are_build_time_errors(detr, tmp_path, coco_root):
    """Every pair and option the query unit refuses, and the key each error names."""
    dino, dino_cfg = detr['dino']['config'], Config.fromfile(detr['dino']['config'])
    dino_teacher = detr['dino']['teacher_cfg']
    random = dict(teacher_ckpt=RANDOM_TEACHER)
    (tmp_path / 'retina').mkdir()
    retina = write_retinanet_configs(str(tmp_path / 'retina'), coco_root)
    # A dense teacher for a query student, a query teacher for a dense student.
    with pytest.raises(TypeError, match='^teacher_cfg model: query distillation supports the '
                       'detectors DETR, DeformableDETR, DINO .*got RetinaNet with RetinaHead'):
        build_distiller(dino, teacher_cfg=retina['teacher_cfg'], **random)
    with pytest.raises(TypeError, match='^teacher_cfg: a RetinaHead student needs a dense '
                       'teacher head'):
        build_distiller(retina['config'], teacher_cfg=dino_teacher, **random)
    # A DETR-family head mmdist does not read (Conditional DETR's own forward).
    conditional = Config.fromstring(
        "_base_ = ['mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py']\n",
        '.py').model
    conditional.backbone.update(depth=18, init_cfg=None)
    conditional.neck.in_channels = [512]
    with pytest.raises(TypeError, match='^model.student: query distillation supports the '
                       'detectors .*got ConditionalDETR with ConditionalDETRHead'):
        build_distiller(_model(tmp_path, 'conditional', dino,
                               dict(student=dict(_delete_=True, **conditional.to_dict()))),
                        **random)
    # Other classes; sigmoid vs softmax classifiers.
    classes = _model(tmp_path, 'classes', dino_teacher, dict(bbox_head=dict(num_classes=5)))
    with pytest.raises(ValueError, match='model.student.bbox_head.num_classes: student and '
                       'teacher differ in num_classes'):
        build_distiller(dino, teacher_cfg=classes, **random)
    with pytest.raises(ValueError, match='model.student.bbox_head.loss_cls.use_sigmoid: '
                       'student and teacher differ in class channels'):
        build_distiller(dino, teacher_cfg=detr['detr']['teacher_cfg'], **random)
    # A student without a matcher.
    student = copy.deepcopy(dino_cfg.model.student)
    student.train_cfg = None
    with pytest.raises(ValueError, match='model.student.train_cfg.assigner'):
        build_distiller(dino, student=student, **random)
    # Dense options for a query student; query options for other students.
    for option in (dict(dense_rows='location'), dict(mask_padding=False),
                   dict(score='class')):
        with pytest.raises(ValueError, match='model.dense_rows / model.mask_padding / '
                           'model.score'):
            build_distiller(dino, **option, **random)
    with pytest.raises(TypeError, match='model.cross_head: the student head DINOHead is not '
                       'a supported dense head'):
        build_distiller(dino, cross_head=True, **random)
    with pytest.raises(ValueError, match=r"model.query_layers: expected one of \('last', "
                       r"'all'\), got 'first'"):
        build_distiller(dino, query_layers='first', **random)
    for option in (dict(query_layers='all'), BOXES):
        with pytest.raises(ValueError, match='model.query_layers / model.loss_bbox / '
                           'model.loss_iou: .*this student has none'):
            build_distiller(retina['config'], **option, **random)
    with pytest.raises(ValueError, match='model.loss_iou.loss_weight: expected >= 0'):
        build_distiller(dino, loss_iou=dict(type='mmdet.GIoULoss', loss_weight=-1.0), **random)
    with pytest.raises(KeyError, match='model.loss_bbox: '):
        build_distiller(dino, loss_bbox=dict(type='NoSuchLoss'), **random)

