# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""SegmentationDistiller: masks, resolution, heads, the auxiliary-head rule, transformer
teachers and students, errors (tiny CPU models)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope

from mmdist.models.distillers import SegmentationDistiller, segmentation_distiller
from mmdist.models.utils import dense_to_rows
from mmdist.models.utils.teacher import RANDOM_TEACHER
from mmdist.registry import MODELS
from mmdist.testing._detection import write_config
from mmdist.testing._segmentation import write_segmentation_configs, write_tiny_shipped_config

SEGFORMER_PSPNET = 'dist_segformer-mit-b5_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py'
SEGFORMER_SEGFORMER = 'dist_segformer-mit-b5_segformer-mit-b0_8xb1-160k_cityscapes-1024x1024.py'
MASK2FORMER_PSPNET = 'dist_mask2former-swin-b_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py'


@pytest.fixture(scope='module')
def seg(tmp_path_factory, cityscapes_root):
    return write_segmentation_configs(str(tmp_path_factory.mktemp('seg')), cityscapes_root,
                                      'pspnet')


def build(cfg_path, **model_overrides):
    cfg = Config.fromfile(cfg_path)
    cfg.model.update(model_overrides)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model), cfg


def batch(model, cfg, training=True):
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    loader = cfg.train_dataloader if training else cfg.val_dataloader
    dataset = DATASETS.build(loader.dataset)
    return model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), training)


class Spy(torch.nn.Module):
    """Records what a distillation loss receives and returns a graph-connected zero."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, s_rows, t_rows, weight):
        self.calls.append((s_rows.detach(), t_rows.detach(), weight))
        return s_rows.sum() * 0


@pytest.fixture(scope='module')
def transformer_configs(tmp_path_factory, cityscapes_root):
    """Tiny versions of the shipped transformer configs (stock teacher configs shrunk)."""
    return {name: write_tiny_shipped_config(str(tmp_path_factory.mktemp('tf')),
                                            cityscapes_root, name)
            for name in (SEGFORMER_PSPNET, SEGFORMER_SEGFORMER, MASK2FORMER_PSPNET)}


@pytest.mark.parametrize('shipped', [None, SEGFORMER_PSPNET, MASK2FORMER_PSPNET])
def test_losses_finite_teacher_frozen(seg, transformer_configs, shipped):
    """CNN, SegFormer and Mask2Former teachers: frozen (eval mode, no gradients), not in
    the state dict; the student's decode and auxiliary classifiers get gradients."""
    model, cfg = build(seg['config'] if shipped is None else
                       transformer_configs[shipped]['config'])
    assert isinstance(model, SegmentationDistiller)
    model.train()
    assert not any(m.training for m in model.teacher.modules())
    losses = model(**batch(model, cfg), mode='loss')
    assert {'decode.loss_ce', 'aux.loss_ce', 'loss_dist_decode', 'loss_dist_aux'} <= set(losses)
    assert torch.isfinite(losses['loss_dist_decode']) and torch.isfinite(losses['loss_dist_aux'])
    (losses['loss_dist_decode'] + losses['loss_dist_aux']).backward()
    assert model.student.decode_head.conv_seg.weight.grad.abs().sum() > 0
    assert model.student.auxiliary_head.conv_seg.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not any(k.startswith('teacher') for k in model.state_dict())


def test_ignored_pixels_are_left_out(seg):
    """Mask = label != 255 after nearest downsampling, checked against numpy indexing;
    no weights (every pixel) with mask_ignored=False."""
    model, cfg = build(seg['config'], mask_ignored=True)
    model.loss_decode = Spy()
    model.loss_aux = Spy()
    data = batch(model, cfg)
    model(**data, mode='loss')
    s_rows, t_rows, weight = model.loss_decode.calls[0]
    labels = np.stack([s.gt_sem_seg.data[0].numpy() for s in data['data_samples']])
    n, height, width = labels.shape
    h, w = height // 8, width // 8
    rows = labels[:, (np.arange(h) * height) // h][:, :, (np.arange(w) * width) // w]
    expected = (rows != 255).reshape(-1).astype(np.float32)
    assert 0 < expected.sum() < expected.size  # the synthetic maps contain ignored bands
    np.testing.assert_array_equal(weight.numpy(), expected)
    assert s_rows.shape == t_rows.shape == (n * h * w, 19)
    assert model.loss_aux.calls[0][2].shape == weight.shape
    # A logit size that does not divide the label size (the interpolation branch).
    h, w = 5, 7
    rows = labels[:, (np.arange(h) * height) // h][:, :, (np.arange(w) * width) // w]
    np.testing.assert_array_equal(model._valid_pixels(data['data_samples'], (h, w)).numpy(),
                                  (rows != 255).reshape(-1).astype(np.float32))
    model.mask_ignored = False
    model(**data, mode='loss')
    assert model.loss_decode.calls[1][2] is None and model.loss_aux.calls[1][2] is None


def test_teacher_logits_resized_to_student_resolution(seg, tmp_path):
    """A teacher with output stride 16 is compared after mmseg's bilinear resize."""
    teacher_cfg = write_config(
        str(tmp_path / 'teacher_os16.py'),
        f"_base_ = [{seg['teacher_cfg']!r}]\n"
        'model = dict(backbone=dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))\n')
    model, cfg = build(seg['config'], teacher_cfg=teacher_cfg, teacher_ckpt=RANDOM_TEACHER)
    model.loss_decode = Spy()
    data = batch(model, cfg)
    model(**data, mode='loss')
    s_rows, t_rows, weight = model.loss_decode.calls[0]
    with torch.no_grad():
        t_logits = model.teacher.decode_head(model.teacher.extract_feat(data['inputs']))
    assert t_logits.shape[-1] * 2 == cfg.model.student.data_preprocessor.size[1] // 8
    reference = F.interpolate(t_logits, scale_factor=2, mode='bilinear', align_corners=False)
    torch.testing.assert_close(t_rows, dense_to_rows(reference))


def test_teacher_dropout_is_off(seg):
    model, cfg = build(seg['config'])
    model.train()
    assert model.teacher.decode_head.dropout is not None
    data = batch(model, cfg)
    with torch.no_grad():
        feats = model.teacher.extract_feat(data['inputs'])
        assert torch.equal(model.teacher.decode_head(feats), model.teacher.decode_head(feats))


def test_config_errors(seg, tmp_path):
    bad_classes = write_config(str(tmp_path / 't_classes.py'),
                               f"_base_ = [{seg['teacher_cfg']!r}]\n"
                               'model = dict(decode_head=dict(num_classes=18))\n')
    with pytest.raises(ValueError, match=r'model.student.decode_head.num_classes.*19.*18'):
        build(seg['config'], teacher_cfg=bad_classes, teacher_ckpt=RANDOM_TEACHER)
    with pytest.raises(ValueError, match='model.loss_decode.activation'):
        build(seg['config'], teacher_ckpt=RANDOM_TEACHER,
              loss_decode=dict(type='mmdist.DISTLoss', activation='sigmoid'))
    model, _ = build(seg['config'], teacher_ckpt=RANDOM_TEACHER, loss_aux=None)
    assert model.loss_aux is None and model.teacher_aux is None
    binary = write_config(str(tmp_path / 't_bin.py'),
                          f"_base_ = [{seg['teacher_cfg']!r}]\n"
                          'model = dict(decode_head=dict(num_classes=2, out_channels=1, '
                          "loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True)))\n")
    with pytest.raises(ValueError, match='out_channels=1'):
        build(seg['config'], teacher_cfg=binary, teacher_ckpt=RANDOM_TEACHER)
    with pytest.raises(TypeError, match='model.mask_ignored: expected True or False'):
        build(seg['config'], teacher_ckpt=RANDOM_TEACHER, mask_ignored='yes')


def test_teacher_without_auxiliary_head_is_the_decode_head_for_loss_aux(seg, tmp_path):
    """The rule for loss_aux with a teacher lacking an auxiliary head: the student's
    auxiliary logits are compared with the teacher's decode logits."""
    no_aux = write_config(str(tmp_path / 't_noaux.py'),
                          f"_base_ = [{seg['teacher_cfg']!r}]\n"
                          'model = dict(auxiliary_head=None)\n')
    model, cfg = build(seg['config'], teacher_cfg=no_aux, teacher_ckpt=RANDOM_TEACHER)
    assert model.teacher_aux.head is model.teacher_decode.head
    model.loss_aux = Spy()
    data = batch(model, cfg)
    calls = []
    hook = model.teacher.decode_head.register_forward_hook(lambda *args: calls.append(1))
    losses = model(**data, mode='loss')
    hook.remove()
    assert 'loss_dist_aux' in losses and calls == [1]  # the decode head runs once
    s_rows, t_rows, weight = model.loss_aux.calls[0]
    with torch.no_grad():
        t_logits = model.teacher.decode_head(model.teacher.extract_feat(data['inputs']))
    torch.testing.assert_close(t_rows, dense_to_rows(t_logits))


def test_student_without_auxiliary_head_and_loss_aux_is_an_error(seg, transformer_configs):
    """SegFormer student (no auxiliary head) with a CNN teacher that has one: loss_aux
    must be None; with None the teacher's auxiliary head is not run."""
    config = transformer_configs[SEGFORMER_SEGFORMER]['config']
    with pytest.raises(ValueError, match=r'^model.loss_aux: model.student.auxiliary_head is '
                       'missing'):
        build(config, teacher_cfg=seg['teacher_cfg'], teacher_ckpt=RANDOM_TEACHER,
              loss_aux=dict(type='mmdist.DISTLoss'))
    model, cfg = build(config, teacher_cfg=seg['teacher_cfg'], teacher_ckpt=RANDOM_TEACHER)
    assert model.teacher.with_auxiliary_head and model.loss_aux is None
    calls = []
    hook = model.teacher.auxiliary_head.register_forward_hook(lambda *args: calls.append(1))
    losses = model(**batch(model, cfg), mode='loss')
    hook.remove()
    assert set(k for k in losses if k.startswith('loss_dist')) == {'loss_dist_decode'}
    assert calls == []


def test_undistilled_student_auxiliary_head_is_logged(seg, monkeypatch):
    messages = []
    monkeypatch.setattr(segmentation_distiller, 'print_log',
                        lambda message, *args, **kwargs: messages.append(message))
    build(seg['config'], loss_aux=None)
    assert any(m.startswith('model.loss_aux is None: the student\'s auxiliary head is '
                            'trained by its own loss only') for m in messages)
    messages.clear()
    build(seg['config'])
    assert not any('model.loss_aux' in m for m in messages)


def test_segformer_student_ignore_mask_at_its_resolution(transformer_configs):
    """A SegFormer student's rows are pixels at 1/4 (8 x 16 here); its weights are the
    labels picked there (nearest) != 255."""
    model, cfg = build(transformer_configs[SEGFORMER_SEGFORMER]['config'])
    model.loss_decode = Spy()
    data = batch(model, cfg)
    model(**data, mode='loss')
    s_rows, t_rows, weight = model.loss_decode.calls[0]
    labels = np.stack([s.gt_sem_seg.data[0].numpy() for s in data['data_samples']])
    picked = labels[:, ::4][:, :, ::4]  # (np.arange(8) * 32) // 8 = 4 i
    assert s_rows.shape == t_rows.shape == (2 * 8 * 16, 19)
    np.testing.assert_array_equal(weight.numpy(), (picked != 255).reshape(-1))


def test_mask2former_student_is_refused(transformer_configs):
    paths = transformer_configs[MASK2FORMER_PSPNET]
    cfg = Config.fromfile(paths['config'])
    cfg.model.student = Config.fromfile(paths['teacher_cfg']).model  # a tiny Mask2Former
    cfg.model.loss_aux = None
    with pytest.raises(TypeError, match=r'^model.student.decode_head: Mask2FormerHead is '
                       'supported as a teacher only'):
        with DefaultScope.overwrite_default_scope('mmseg'):
            MODELS.build(cfg.model)
