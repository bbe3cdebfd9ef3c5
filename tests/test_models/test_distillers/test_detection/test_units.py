# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DetectionDistiller's units on the new pairs (RTMDet, YOLOX, cross-head): which unit a
pair gets, where the gradients go, that the teacher never changes, the build-time errors
of every unsupported pair, and the hooks of the stock RTMDet / YOLOX recipes."""
import copy
import logging
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from mmdist.models.utils.teacher import RANDOM_TEACHER
from mmdist.testing import shipped_config_dir
from mmdist.testing._detection import (build_distiller, data_overrides,
                                       step_changes_the_student_only, train_batch, write_config,
                                       write_dense_configs, write_faster_rcnn_configs)

pytestmark = pytest.mark.usefixtures('one_cpu_thread')  # tests/conftest.py

PAIRS = ('rtmdet', 'crosshead_gfl_retinanet', 'crosshead_rtmdet_atss')


@pytest.fixture(scope='module')
def dense(tmp_path_factory, coco_root):
    tmp = str(tmp_path_factory.mktemp('units'))
    # PyTorch's initialisation: class logits that vary (DIST of a constant teacher has no
    # gradient).
    return {pair: write_dense_configs(tmp, coco_root, pair, teacher_init=False)
            for pair in ('retinanet', *PAIRS)}


@pytest.fixture(scope='module')
def yolox(tmp_path_factory, coco_root):
    """The demo's YOLOX distillation config on the test data (random teacher weights)."""
    tmp = str(tmp_path_factory.mktemp('yolox_units'))
    demo = shipped_config_dir('demo')
    config = write_config(
        osp.join(tmp, 'dist.py'),
        f"_base_ = [{osp.join(demo, 'det_yolox_student_dist.py')!r}]\n"
        f'model = dict(teacher_ckpt={RANDOM_TEACHER!r})\n' +
        data_overrides(coco_root, validate=False))
    return dict(config=config)




def paths_of(name, dense, yolox):
    return yolox if name == 'yolox' else dense[name]


@pytest.mark.parametrize('name,unit', [('rtmdet', 'DenseDirect'), ('yolox', 'DenseDirect'),
                                       ('crosshead_gfl_retinanet', 'CrossHead'),
                                       ('crosshead_rtmdet_atss', 'CrossHead')])
def test_gradient_reaches_the_student_only_and_the_teacher_never_changes(
        dense, yolox, name, unit):
    """loss_dist_cls alone gives the student's backbone a gradient (through the frozen
    teacher classifier for cross-head) and the adapters one; no teacher parameter gets a
    gradient; after an SGD step on the full loss the teacher's weights and buffers are
    bit-identical and the student's have changed."""
    model, cfg = build_distiller(paths_of(name, dense, yolox)['config'])
    assert type(model.unit).__name__ == unit
    model.init_weights()
    model.train()
    data = train_batch(model, cfg)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss_dist_cls']) and losses['loss_dist_cls'] > 0
    losses['loss_dist_cls'].backward(retain_graph=True)
    backbone_grad = sum(p.grad.abs().sum() for p in model.student.backbone.parameters()
                        if p.grad is not None)
    assert backbone_grad > 0
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    adapters = [p for n, p in model.named_parameters() if n.startswith('unit.')]
    assert bool(adapters) == (unit == 'CrossHead')  # 16 -> 32 channels
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapters)
    step_changes_the_student_only(model, losses)


def test_same_family_keeps_the_direct_path_unless_cross_head_is_asked(dense):
    model, _ = build_distiller(dense['retinanet']['config'], teacher_ckpt=RANDOM_TEACHER)
    assert type(model.unit).__name__ == 'DenseDirect'
    model, _ = build_distiller(dense['retinanet']['config'], teacher_ckpt=RANDOM_TEACHER,
                               cross_head=True)
    assert type(model.unit).__name__ == 'CrossHead'
    assert [type(a).__name__ for a in model.unit.adapters] == ['Conv2d'] * 5  # 16 -> 32


def test_unpaired_levels_are_named_in_the_build_log(dense, monkeypatch):
    logged = []
    from mmdist.models.distillers.detection import rows
    monkeypatch.setattr(rows, 'print_log',
                        lambda msg, logger=None, level=logging.INFO: logged.append(msg))
    model, _ = build_distiller(dense['crosshead_rtmdet_atss']['config'])
    assert model.unit.pairs.strides == [(8, 8), (16, 16), (32, 32)]
    (message, ) = logged
    assert message.startswith('model.student.bbox_head.anchor_generator.strides: the '
                              'student levels of stride [(64, 64), (128, 128)] have no '
                              'teacher level')


def test_cross_head_runs_the_teachers_classification_branch_only(dense):
    """The teacher's box branch never runs; its classifier runs once per paired level on
    its own features (no_grad) and once more on the student's (with gradients)."""
    model, cfg = build_distiller(dense['crosshead_rtmdet_atss']['config'])
    model.train()
    data = train_batch(model, cfg)
    head = model.teacher.bbox_head
    calls = []
    hooks = [m.register_forward_hook(lambda m, a, out: calls.append(('reg', None)))
             for m in list(head.reg_convs) + list(head.rtm_reg)]
    hooks += [m.register_forward_hook(
        lambda m, a, out, level=level: calls.append((level, torch.is_grad_enabled())))
        for level, m in enumerate(head.rtm_cls)]
    try:
        model(**data, mode='loss')
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == [(0, False), (1, False), (2, False), (0, True), (1, True), (2, True)]


def _register_scaled_head():
    """A RetinaHead subclass with its own forward_single (its class logits depend on the box
    branch): mmdist cannot run its classifier alone."""

    class ScaledRetinaHead(RetinaHead):

        def forward_single(self, x):
            cls_score, bbox_pred = super().forward_single(x)
            return 2 * cls_score + bbox_pred.mean(1, keepdim=True), bbox_pred

    MMDET_MODELS.register_module('_ScaledRetinaHead', module=ScaledRetinaHead, force=True)


def _teacher(tmp_path, name, base, model):
    return write_config(str(tmp_path / f'{name}.py'), f'_base_ = [{base!r}]\nmodel = {model!r}\n')


def test_unsupported_pairs_are_build_time_errors_naming_the_key(dense, yolox, tmp_path,
                                                                 coco_root):
    """Every pair the distiller refuses, and the key each error names."""
    retina, rtmdet = dense['retinanet']['config'], dense['rtmdet']['config']
    retina_teacher = dense['retinanet']['teacher_cfg']
    (tmp_path / 'faster').mkdir()
    faster = write_faster_rcnn_configs(str(tmp_path / 'faster'), coco_root)
    random = dict(teacher_ckpt=RANDOM_TEACHER)
    # Different priors per location, direct path: the message suggests cross-head.
    with pytest.raises(ValueError, match=r'model.student.bbox_head.anchor_generator: .*'
                       r'anchors per location.*model.cross_head=True'):
        build_distiller(rtmdet, teacher_cfg=retina_teacher, **random)
    # No stride in common.
    no_common = _teacher(tmp_path, 'strides', retina_teacher,
                         dict(bbox_head=dict(anchor_generator=dict(strides=[6, 12, 24, 48,
                                                                            96]))))
    for cross in (False, True):
        with pytest.raises(ValueError, match=r'model.student.bbox_head.anchor_generator.'
                           r'strides / teacher_cfg model.bbox_head.anchor_generator.strides'
                           r': the student and teacher heads share no FPN stride'):
            build_distiller(retina, teacher_cfg=no_common, cross_head=cross, **random)
    # Other classes (cross-head too).
    classes = _teacher(tmp_path, 'classes', retina_teacher, dict(bbox_head=dict(
        num_classes=5)))
    with pytest.raises(ValueError, match='model.student.bbox_head.num_classes: student and '
                       'teacher differ in num_classes'):
        build_distiller(rtmdet, teacher_cfg=classes, cross_head=True, **random)
    # Sigmoid vs softmax classifiers, direct path.
    softmax = _teacher(tmp_path, 'softmax', retina_teacher, dict(bbox_head=dict(
        loss_cls=dict(_delete_=True, type='CrossEntropyLoss', use_sigmoid=False))))
    with pytest.raises(ValueError, match='model.student.bbox_head.loss_cls.use_sigmoid'):
        build_distiller(retina, teacher_cfg=softmax, **random)
    # A head whose class logits come from its own forward: direct only (runs in full).
    _register_scaled_head()
    scaled = _teacher(tmp_path, 'scaled', retina_teacher,
                      dict(bbox_head=dict(type='_ScaledRetinaHead')))
    model, _ = build_distiller(retina, teacher_cfg=scaled, **random)
    assert type(model.unit).__name__ == 'DenseDirect'
    with pytest.raises(TypeError, match='model.cross_head: teacher_cfg model.bbox_head is a '
                       'ScaledRetinaHead'):
        build_distiller(rtmdet, teacher_cfg=scaled, cross_head=True, **random)
    student = Config.fromfile(retina).model.student
    student.bbox_head.type = '_ScaledRetinaHead'
    with pytest.raises(TypeError, match='model.cross_head: model.student.bbox_head is a '
                       'ScaledRetinaHead'):
        build_distiller(retina, student=student, cross_head=True, **random)
    # Dense student, two-stage teacher (both paths); two-stage student, dense options.
    for cross in (False, True):
        with pytest.raises(TypeError, match='teacher_cfg: a RetinaHead student needs a dense '
                           'teacher head'):
            build_distiller(retina, teacher_cfg=faster['teacher_cfg'], cross_head=cross, **random)
    for option in (dict(cross_head=True), dict(score='class')):
        with pytest.raises(ValueError, match='model.dense_rows / model.mask_padding / '
                           'model.cross_head / model.score'):
            build_distiller(faster['config'], **option, **random)
    with pytest.raises(TypeError, match='teacher_cfg: a two-stage student needs a teacher '
                       'with a StandardRoIHead'):
        build_distiller(faster['config'], teacher_cfg=retina_teacher, **random)
    # score: values, and only for heads with objectness, not with cross-head's classifier.
    with pytest.raises(ValueError, match=r"model.score: expected one of \('class', 'joint'\)"):
        build_distiller(retina, score='obj', **random)
    with pytest.raises(ValueError, match="model.score='class': .*neither head has one"):
        build_distiller(retina, score='class', **random)
    with pytest.raises(ValueError, match="model.score='joint': cross-head distillation"):
        build_distiller(yolox['config'], score='joint', cross_head=True)
    with pytest.raises(TypeError, match='model.cross_head: expected True or False'):
        build_distiller(retina, cross_head='yes', **random)
    # YOLOX student (1 prior) and a RetinaNet teacher (9 anchors): cross-head only.
    yolox_retina = dict(teacher_cfg=retina_teacher, teacher_ckpt=RANDOM_TEACHER)
    with pytest.raises(ValueError, match='anchors per location'):
        build_distiller(yolox['config'], **yolox_retina)
    model, _ = build_distiller(yolox['config'], cross_head=True, score=None, **yolox_retina)
    assert type(model.unit).__name__ == 'CrossHead'


def test_stopped_distillation_trains_the_student_alone(dense):
    """distill_stopped (set by mmdist.StopDistillHook): the teacher does not run, the
    student's losses are those of the student alone, loss_dist_cls is 0 and the adapters
    get a (zero) gradient, so that DDP sees every parameter used."""
    model, cfg = build_distiller(dense['crosshead_gfl_retinanet']['config'])
    model.train()
    data = train_batch(model, cfg)
    ran = []
    hook = model.teacher.backbone.register_forward_hook(lambda *args: ran.append(1))
    model.distill_stopped = True
    try:
        losses = model(**copy.deepcopy(data), mode='loss')
    finally:
        hook.remove()
    assert not ran
    alone = model.student.loss(*copy.deepcopy(data).values())
    assert set(losses) == set(alone) | {'loss_dist_cls'}
    assert losses['loss_dist_cls'].item() == 0.0
    for key, value in alone.items():
        torch.testing.assert_close(losses[key], value, rtol=0, atol=0)
    losses['loss_dist_cls'].backward()
    adapters = list(model.unit.adapters.parameters())
    assert adapters and all(p.grad is not None and not p.grad.any() for p in adapters)


def test_a_copy_shares_the_teacher(dense):
    """mmengine's EMAHook deep-copies the model: the copy shares the frozen teacher and has
    its own student and adapters."""
    model, _ = build_distiller(dense['crosshead_gfl_retinanet']['config'])
    copied = copy.deepcopy(model)
    assert copied.teacher is model.teacher
    assert copied.student is not model.student
    assert copied.unit.adapters[0].weight is not model.unit.adapters[0].weight
    assert torch.equal(copied.unit.adapters[0].weight, model.unit.adapters[0].weight)
    assert copied.unit.readers is not None and copied.detector is copied.student


def test_yolox_mode_switch_hook_reaches_the_students_head(yolox):
    """mmdet's YOLOXModeSwitchHook turns on the L1 loss of ``model.detector.bbox_head``
    when a model has ``detector`` (the distiller's is the student)."""
    from mmdet.engine.hooks import YOLOXModeSwitchHook
    model, _ = build_distiller(yolox['config'])
    assert model.student.bbox_head.use_l1 is False
    skipped = []
    runner = SimpleNamespace(
        epoch=0, max_epochs=1, model=model, logger=MMLogger.get_current_instance(),
        train_dataloader=SimpleNamespace(dataset=SimpleNamespace(
            update_skip_type_keys=skipped.append)))
    YOLOXModeSwitchHook(num_last_epochs=1).before_train_epoch(runner)
    assert model.student.bbox_head.use_l1 is True and skipped
    assert model.teacher.bbox_head.use_l1 is False


def test_adapters_and_connectors_leave_the_students_initial_weights_as_alone(dense):
    """Building the distiller (teacher, cross-head adapters, mimic connectors) does not
    advance the global RNG: with the same seed, the student's init_weights (run by the
    runner after the model is built) draws what it draws when the student trains alone."""
    from mmdet.registry import MODELS as DET_MODELS
    cfg = Config.fromfile(dense['crosshead_gfl_retinanet']['config'])
    torch.manual_seed(3)
    with DefaultScope.overwrite_default_scope('mmdet'):
        DET_MODELS.build(copy.deepcopy(cfg.model.student))
    alone = torch.rand(4)
    torch.manual_seed(3)
    model, _ = build_distiller(dense['crosshead_gfl_retinanet']['config'],
                               mimic=dict(loss_weight=1.0))
    assert len(model.unit.adapters) == 5 and model.mimic is not None
    assert torch.equal(torch.rand(4), alone)
