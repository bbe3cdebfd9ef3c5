# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DetectionDistiller: contract, mmdet layout, errors (unit level, tiny CPU models)."""
import copy
import weakref

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from mmdist.datasets import SHAPE_CLASSES
from mmdist.models.distillers import DetectionDistiller
from mmdist.models.utils import dense_to_rows
from mmdist.models.utils.teacher import RANDOM_TEACHER
from mmdist.testing._detection import (build_distiller, save_teacher_checkpoint, tiny_retinanet,
                                       train_batch, write_config, write_faster_rcnn_configs,
                                       write_retinanet_configs)


@pytest.fixture(scope='module')
def retina(tmp_path_factory, coco_root):
    return write_retinanet_configs(str(tmp_path_factory.mktemp('retina')), coco_root)


@pytest.fixture(scope='module')
def faster(tmp_path_factory, coco_root):
    return write_faster_rcnn_configs(str(tmp_path_factory.mktemp('faster')), coco_root)




def test_teacher_frozen_hidden_eval_and_moved(retina):
    model, _ = build_distiller(retina['config'], teacher_fuse_conv_bn=False)
    assert isinstance(model, DetectionDistiller)
    model.train()
    assert model.student.training
    assert not any(m.training for m in model.teacher.modules())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in model.parameters()}
    assert not any(k.startswith('teacher') for k in model.state_dict())
    assert any(k.startswith('student.') for k in model.state_dict())
    # Weights are exactly the checkpoint's.
    ckpt = torch.load(retina['teacher_ckpt'], map_location='cpu', weights_only=True)
    for name, value in model.teacher.state_dict().items():
        assert torch.equal(value, ckpt['state_dict'][name]), name
    model.double()
    assert next(model.teacher.parameters()).dtype == torch.float64


def batch_norm_count(module):
    return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


def test_teacher_batch_norms_are_folded_by_default(retina):
    """By default the teacher's BatchNorms are folded into its convolutions: none is
    left, the teacher's weights stay frozen, and its class logits and the distillation
    loss are those of the stock teacher up to float rounding."""
    torch.manual_seed(0)
    folded, cfg = build_distiller(retina['config'])
    torch.manual_seed(0)
    stock, _ = build_distiller(retina['config'], teacher_fuse_conv_bn=False)
    assert batch_norm_count(stock.teacher) == 20  # ResNet-18 (width 16) backbone
    assert batch_norm_count(folded.teacher) == 0
    assert all(not p.requires_grad for p in folded.teacher.parameters())
    folded.train(), stock.train()
    assert not any(m.training for m in folded.teacher.modules())
    data = train_batch(folded, cfg)
    with torch.no_grad():
        logits = [model.teacher.bbox_head(model.teacher.extract_feat(data['inputs']))[0]
                  for model in (folded, stock)]
    for ours, plain in zip(*logits, strict=True):
        torch.testing.assert_close(ours, plain, rtol=1e-4, atol=1e-4 * plain.abs().max())
    losses = [model(**data, mode='loss')['loss_dist_cls'] for model in (folded, stock)]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-4, atol=0)
    with pytest.raises(TypeError, match='model.teacher_fuse_conv_bn: expected True or False'):
        build_distiller(retina['config'], teacher_fuse_conv_bn='yes')


def test_loss_keys_finite_and_gradients_reach_student_only(retina):
    model, cfg = build_distiller(retina['config'])
    model.train()
    data = train_batch(model, cfg)
    losses = model(**data, mode='loss')
    assert {'loss_cls', 'loss_bbox', 'loss_dist_cls'} <= set(losses)
    values = [v for k, vs in losses.items() if 'loss' in k
              for v in (vs if isinstance(vs, list) else [vs])]
    assert all(torch.isfinite(v) for v in values)
    losses['loss_dist_cls'].backward()
    assert model.student.bbox_head.retina_cls.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_teacher_runs_first_and_its_features_are_freed(retina):
    """The teacher runs before the student, only its head's classification branch runs,
    and none of its backbone, FPN or class-logit outputs is alive any more when the
    student's forward starts (its class logits are kept as one (rows, C) copy)."""
    model, cfg = build_distiller(retina['config'])
    model.train()
    data = train_batch(model, cfg)
    order, teacher_outputs, alive_at_student_start = [], [], []

    def record(name):
        def hook(module, args, output):
            if not order or order[-1] != name:
                order.append(name)
            if name.startswith('teacher'):
                tensors = [output] if isinstance(output, torch.Tensor) else output
                teacher_outputs.extend(weakref.ref(t) for t in tensors)
        return hook

    def student_starts(module, args):
        alive_at_student_start.extend(ref() is not None for ref in teacher_outputs)

    head = model.teacher.bbox_head
    modules = {'teacher backbone': model.teacher.backbone, 'teacher neck': model.teacher.neck,
               'teacher classifier': head.retina_cls, 'teacher box branch': head.retina_reg,
               'student backbone': model.student.backbone}
    modules.update({f'teacher box conv {i}': conv for i, conv in enumerate(head.reg_convs)})
    hooks = [m.register_forward_hook(record(name)) for name, m in modules.items()]
    hooks.append(model.student.backbone.register_forward_pre_hook(student_starts))
    try:
        model(**data, mode='loss')
    finally:
        for h in hooks:
            h.remove()
    assert order == ['teacher backbone', 'teacher neck', 'teacher classifier',
                     'student backbone']
    assert len(alive_at_student_start) == 4 + 5 + 5  # stages, FPN levels, class logits
    assert not any(alive_at_student_start)


def test_predict_and_tensor_are_the_students(retina):
    model, cfg = build_distiller(retina['config'])
    model.eval()
    init_default_scope('mmdet')
    from mmdet.registry import DATASETS
    val = DATASETS.build(cfg.val_dataloader.dataset)
    data = model.data_preprocessor(pseudo_collate([val[0]]), False)
    with torch.no_grad():
        ours = model(**copy.deepcopy(data), mode='predict')
        plain = model.student(**copy.deepcopy(data), mode='predict')
        ours_t = model(data['inputs'], mode='tensor')
        plain_t = model.student(data['inputs'], mode='tensor')
    assert torch.equal(ours[0].pred_instances.bboxes, plain[0].pred_instances.bboxes)
    for a, b in zip(ours_t[0], plain_t[0]):
        assert torch.equal(a, b)


def test_dense_rows_follow_mmdet_prior_order(retina):
    """Row r of dense_to_rows is prior r of mmdet's prior generator (same (h, w, a))."""
    model, _ = build_distiller(retina['config'])
    head = model.student.bbox_head
    num_anchors, num_classes = head.num_base_priors, head.cls_out_channels
    height, width = 3, 4
    # Channel a*C + c at (h, w) holds h*1000 + w*10 + a.
    code = torch.zeros(1, num_anchors * num_classes, height, width)
    for a in range(num_anchors):
        for h in range(height):
            for w in range(width):
                code[0, a * num_classes:(a + 1) * num_classes, h, w] = h * 1000 + w * 10 + a
    rows = dense_to_rows(code, num_anchors)[:, 0].long()
    num_levels = head.prior_generator.num_levels
    priors = head.prior_generator.grid_priors([(height, width)] * num_levels, device='cpu')[0]
    base = head.prior_generator.base_anchors[0]
    stride = head.prior_generator.strides[0]
    for r, value in enumerate(rows.tolist()):
        h, w, a = value // 1000, (value % 1000) // 10, value % 10
        expected = base[a] + torch.tensor([w * stride[0], h * stride[1]] * 2)
        assert torch.allclose(priors[r], expected), (r, h, w, a)


class _Sample:
    def __init__(self, shape):
        self.img_shape = shape


@pytest.mark.parametrize('dense_rows', ['anchor', 'location'])
def test_padding_rows_are_left_out(retina, dense_rows):
    """All levels in one call, one row group per level; rows of priors ('anchor': one
    row per prior; 'location': one row of all 9 anchors per cell) in the batch padding
    get weight 0, and no weights at all without padding or with mask_padding=False."""
    model, _ = build_distiller(retina['config'], dense_rows=dense_rows, mask_padding=True)
    per_row = 1 if dense_rows == 'anchor' else 9  # priors in one row
    seen = []

    class Spy(torch.nn.Module):

        def forward(self, s_rows, t_rows, weight, groups):
            seen.append((tuple(s_rows.shape), weight, groups))
            return s_rows.sum() * 0

    rows = model.unit.rows
    # A 64 x 64 batch: levels of stride 8, 16, 32, 64, 128 have 8, 4, 2, 1, 1 cells a side.
    sizes = [8, 4, 2, 1, 1]
    logits = [torch.randn(2, 9 * 4, n, n) for n in sizes]
    rows.loss(Spy(), logits, rows.rows(logits), [_Sample((64, 64)), _Sample((40, 24))])
    (shape, weight, groups), = seen
    rows_per_cell = 9 // per_row
    assert groups == [2 * n * n * rows_per_cell for n in sizes]
    assert shape == (sum(groups), 4 * per_row)
    for level, (level_weight, n, stride) in enumerate(
            zip(weight.split(groups), sizes, [8, 16, 32, 64, 128])):
        full = n * n * rows_per_cell
        assert level_weight[:full].sum() == full  # full-size image: all valid
        # The 40 x 24 image covers ceil(40 / stride) x ceil(24 / stride) cells.
        valid = min(-(-40 // stride), n) * min(-(-24 // stride), n) * rows_per_cell
        assert level_weight[full:].sum() == valid, level
    if dense_rows == 'anchor':  # row for row, mmdet's own rule (the anchor generator's)
        generator = model.student.bbox_head.prior_generator
        flags = [generator.valid_flags([(n, n) for n in sizes], shape, device='cpu')
                 for shape in ((64, 64), (40, 24))]
        assert torch.equal(weight.bool(), torch.cat([f[level] for level in range(len(sizes))
                                                     for f in flags]))
    # No padding at all: no weights.
    seen.clear()
    rows.loss(Spy(), logits, rows.rows(logits), [_Sample((64, 64)), _Sample((64, 64))])
    assert seen[0][1] is None
    # Padding kept (the official code's choice): no weights either.
    seen.clear()
    rows.mask_padding = False
    rows.loss(Spy(), logits, rows.rows(logits), [_Sample((64, 64)), _Sample((40, 24))])
    assert seen[0][1] is None and seen[0][2] == groups


def test_location_rows_hold_all_anchors_of_a_cell(retina):
    """dense_rows='location': row (n, h, w) of a level is the classifier's A*C channels
    at that cell, in channel order (anchor-major), as the official code reshapes them."""
    model, _ = build_distiller(retina['config'], dense_rows='location')
    maps = [torch.randn(2, 9 * 4, n, n) for n in [8, 4, 2, 1, 1]]
    rows = model.unit.rows.rows(maps)
    expected = torch.cat([m.permute(0, 2, 3, 1).reshape(-1, 36) for m in maps])
    assert torch.equal(rows, expected)


def test_grouped_dense_loss_equals_one_call_per_level(retina):
    """DISTLoss takes all FPN levels in one call (`groups`): the same value and gradient
    as one call per level, with the same rows and padding weights."""
    model, _ = build_distiller(retina['config'], dense_rows='anchor', mask_padding=True)
    sizes = [8, 4, 2, 1, 1]
    torch.manual_seed(0)
    s_logits = [torch.randn(2, 9 * 4, n, n, requires_grad=True) for n in sizes]
    t_logits = [torch.randn(2, 9 * 4, n, n) for n in sizes]
    samples = [_Sample((64, 64)), _Sample((40, 24))]
    rows = model.unit.rows
    grouped = rows.loss(model.loss_cls, s_logits, rows.rows(t_logits), samples)
    grouped_grads = torch.autograd.grad(grouped, s_logits)
    reference = 0
    for n, stride, s_map, t_map in zip(sizes, [8, 16, 32, 64, 128], s_logits, t_logits):
        # Image 0 fills the batch; image 1 (h 40, w 24) covers the first
        # ceil(40 / stride) x ceil(24 / stride) cells of each level, all 9 anchors.
        padded = torch.zeros(n, n, 9)
        padded[:min(-(-40 // stride), n), :min(-(-24 // stride), n)] = 1
        weight = torch.cat([torch.ones(n * n * 9), padded.flatten()])
        reference = reference + model.loss_cls(
            dense_to_rows(s_map, 9), dense_to_rows(t_map, 9), weight)
    reference_grads = torch.autograd.grad(reference, s_logits)
    torch.testing.assert_close(grouped, reference, rtol=1e-5, atol=1e-6)
    for got, expected in zip(grouped_grads, reference_grads):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_dense_loss_without_groups_argument_is_refused(retina):
    class NoGroups(torch.nn.Module):

        def __init__(self, activation='sigmoid', **settings):
            super().__init__()
            self.activation = activation

        def forward(self, s_rows, t_rows, weight=None):
            return s_rows.sum()

    from mmdist.registry import MODELS as MMDIST_MODELS
    MMDIST_MODELS.register_module('_NoGroupsLoss', module=NoGroups, force=True)
    with pytest.raises(TypeError, match='model.loss_cls: NoGroups.forward has no `groups`'):
        build_distiller(retina['config'], loss_cls=dict(type='mmdist._NoGroupsLoss'))


def test_roi_teacher_classifies_the_students_sampled_rois(faster):
    model, cfg = build_distiller(faster['config'])
    model.train()
    data = train_batch(model, cfg)
    captured = {}
    student_roi_head = model.student.roi_head
    teacher_roi_head = model.teacher.roi_head

    def keep(name, pick):
        def hook(module, args, output):
            captured.setdefault(name, pick(args, output))  # returns None: output unchanged
        return hook

    hooks = [
        student_roi_head.bbox_roi_extractor.register_forward_hook(
            keep('student_rois', lambda a, o: a[1])),
        teacher_roi_head.bbox_roi_extractor[0].register_forward_hook(
            keep('teacher_rois', lambda a, o: a[1])),
        teacher_roi_head.bbox_head[0].register_forward_hook(
            keep('teacher_logits', lambda a, o: o[0])),
    ]
    forbidden = [model.teacher.rpn_head, teacher_roi_head.bbox_head[1],
                 teacher_roi_head.bbox_head[2], teacher_roi_head.mask_head[0]]
    hooks += [m.register_forward_hook(keep('forbidden', lambda a, o: True)) for m in forbidden]
    try:
        losses = model(**data, mode='loss')
    finally:
        for h in hooks:
            h.remove()
    assert 'forbidden' not in captured, 'teacher ran its RPN, later stages or mask head'
    assert torch.equal(captured['student_rois'], captured['teacher_rois'])
    sampled = cfg.model.student.train_cfg.rcnn.sampler.num * 2
    assert captured['teacher_rois'].shape[0] == sampled
    assert captured['teacher_logits'].shape == (sampled, len(SHAPE_CLASSES) + 1)  # + bg
    assert torch.isfinite(losses['loss_dist_cls'])
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox'} <= set(losses)


def test_each_network_sees_its_own_normalisation(retina, tmp_path):
    """A caffe-style (BGR, std 1) teacher gets exactly what its own preprocessor makes."""
    caffe = dict(type='DetDataPreprocessor', mean=[103.53, 116.28, 123.675],
                 std=[1.0, 1.0, 1.0], bgr_to_rgb=False, pad_size_divisor=32)
    teacher_cfg = write_config(
        str(tmp_path / 'teacher_caffe.py'),
        f"_base_ = [{retina['teacher_cfg']!r}]\nmodel = dict(data_preprocessor={caffe!r})\n")
    model, cfg = build_distiller(retina['config'], teacher_cfg=teacher_cfg)
    init_default_scope('mmdet')
    from mmdet.registry import DATASETS
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    raw = pseudo_collate([dataset[0], dataset[1]])
    raw['inputs'][1] = raw['inputs'][1][:, :40, :48]  # a smaller image: padding
    raw['data_samples'][1].set_metainfo(dict(img_shape=(40, 48)))
    student = model.data_preprocessor(copy.deepcopy(raw), False)
    reference = model.teacher.data_preprocessor(copy.deepcopy(raw), False)['inputs']
    ours = model.teacher_inputs(student['inputs'], student['data_samples'])
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=1e-3, rtol=1e-5)


def test_config_errors_name_the_key(retina, faster, tmp_path):
    cases = [
        (dict(bbox_head=dict(num_classes=5)), 'num_classes'),
        (dict(bbox_head=dict(anchor_generator=dict(scales_per_octave=2))),
         'anchors per location'),
        (dict(bbox_head=dict(anchor_generator=dict(strides=[6, 12, 24, 48, 96]))),
         'share no FPN stride'),
    ]
    for i, (teacher_override, message) in enumerate(cases):
        path = write_config(str(tmp_path / f'bad_teacher_{i}.py'),
                            f"_base_ = [{retina['teacher_cfg']!r}]\n"
                            f'model = {teacher_override!r}\n')
        with pytest.raises(ValueError, match=message) as err:
            build_distiller(retina['config'], teacher_cfg=path, teacher_ckpt=RANDOM_TEACHER)
        assert 'model.student.bbox_head' in str(err.value)
        assert 'student' in str(err.value) and 'teacher' in str(err.value)

    # Dense student with a two-stage teacher; unsupported student head; wrong activation.
    with pytest.raises(TypeError, match='needs a dense teacher head'):
        build_distiller(retina['config'], teacher_cfg=faster['teacher_cfg'],
                        teacher_ckpt=RANDOM_TEACHER)
    rpn_student = dict(type='RPN', backbone=tiny_retinanet(8, 16)['backbone'],
                       neck=dict(type='FPN', in_channels=[8, 16, 32, 64], out_channels=16,
                                 num_outs=5),
                       data_preprocessor=dict(type='DetDataPreprocessor'),
                       rpn_head=dict(type='RPNHead', in_channels=16, feat_channels=16,
                                     anchor_generator=dict(type='AnchorGenerator', scales=[8],
                                                           ratios=[1.0], strides=[4, 8, 16, 32,
                                                                                  64]),
                                     bbox_coder=dict(type='DeltaXYWHBBoxCoder')),
                       train_cfg=None,
                       test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=10, min_bbox_size=0,
                                              nms=dict(type='nms', iou_threshold=0.7))))
    rpn_student['backbone'].pop('_delete_')
    with pytest.raises(TypeError, match='RPNHead is not supported'):
        build_distiller(retina['config'], student=rpn_student, teacher_ckpt=RANDOM_TEACHER)
    with pytest.raises(ValueError, match='model.loss_cls.activation'):
        build_distiller(retina['config'],
                        loss_cls=dict(type='mmdist.DISTLoss', activation='softmax'),
                        teacher_ckpt=RANDOM_TEACHER)
    with pytest.raises(TypeError, match='model.student.roi_head: CascadeRoIHead'):
        build_distiller(faster['config'], student=Config.fromfile(faster['teacher_cfg']).model,
                        teacher_ckpt=RANDOM_TEACHER)
    with pytest.raises(ValueError, match='loss_weight must be >= 0'):
        build_distiller(retina['config'], teacher_ckpt=RANDOM_TEACHER,
                        loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', loss_weight=-1))
    # Row layout keys: unknown values, and set for a two-stage (RoI) student.
    with pytest.raises(ValueError, match="model.dense_rows: expected one of"):
        build_distiller(retina['config'], teacher_ckpt=RANDOM_TEACHER, dense_rows='pixel')
    with pytest.raises(TypeError, match='model.mask_padding: expected True or False'):
        build_distiller(retina['config'], teacher_ckpt=RANDOM_TEACHER, mask_padding='no')
    for override in (dict(dense_rows='location'), dict(mask_padding=False)):
        with pytest.raises(ValueError, match='model.dense_rows / model.mask_padding'):
            build_distiller(faster['config'], teacher_ckpt=RANDOM_TEACHER, **override)


def test_teacher_loading_errors(retina, faster, tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher_cfg: config file '/nonexistent.py'"):
        build_distiller(retina['config'], teacher_cfg='/nonexistent.py')
    with pytest.raises(FileNotFoundError, match='teacher_ckpt: checkpoint'):
        build_distiller(retina['config'], teacher_ckpt=str(tmp_path / 'missing.pth'))
    # A checkpoint of another architecture: strict loading names both config keys.
    with pytest.raises(RuntimeError, match='teacher_ckpt.*does not match.*teacher_strict'):
        build_distiller(retina['config'], teacher_ckpt=faster['teacher_ckpt'])
    # ... and loads (with warnings) when the user allows it.
    model, _ = build_distiller(retina['config'], teacher_ckpt=faster['teacher_ckpt'],
                               teacher_strict=False)
    assert isinstance(model, DetectionDistiller)


def test_feature_mimic(retina):
    model, cfg = build_distiller(retina['config'], mimic=dict(loss_weight=2.0))
    assert len(model.mimic.connectors) == 5
    assert model.mimic.connectors[0].in_channels == 16
    assert model.mimic.connectors[0].out_channels == 32
    assert any(k.startswith('mimic.connectors') for k in model.state_dict())
    model.train()
    losses = model(**train_batch(model, cfg), mode='loss')
    assert torch.isfinite(losses['loss_dist_mimic']) and losses['loss_dist_mimic'] > 0
    losses['loss_dist_mimic'].backward()
    assert model.mimic.connectors[0].weight.grad is not None


def test_teacher_checkpoint_helper_is_deterministic(retina, tmp_path):
    other = save_teacher_checkpoint(retina['teacher_cfg'], str(tmp_path / 'again.pth'))
    a = torch.load(retina['teacher_ckpt'], weights_only=True)['state_dict']
    b = torch.load(other, weights_only=True)['state_dict']
    assert all(torch.equal(a[k], b[k]) for k in a)
