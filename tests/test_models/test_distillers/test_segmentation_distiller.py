# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""SegmentationDistiller: masks, resolution, heads, errors (tiny CPU models)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope

from mmdist.models.distillers import SegmentationDistiller
from mmdist.models.utils import dense_to_rows
from mmdist.models.utils.teacher import RANDOM_TEACHER
from mmdist.registry import MODELS
from mmdist.testing._detection import write_config
from mmdist.testing._segmentation import write_segmentation_configs


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


def test_losses_finite_teacher_frozen(seg):
    model, cfg = build(seg['config'])
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
    """Mask = label != 255 after nearest downsampling, checked against numpy indexing."""
    model, cfg = build(seg['config'])
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
    no_aux = write_config(str(tmp_path / 't_noaux.py'),
                          f"_base_ = [{seg['teacher_cfg']!r}]\n"
                          'model = dict(auxiliary_head=None)\n')
    with pytest.raises(ValueError, match='model.loss_aux: teacher_cfg model.auxiliary_head is '
                       'missing'):
        build(seg['config'], teacher_cfg=no_aux, teacher_ckpt=RANDOM_TEACHER)
    model, _ = build(seg['config'], teacher_cfg=no_aux, teacher_ckpt=RANDOM_TEACHER, loss_aux=None)
    assert model.loss_aux is None
    with pytest.raises(ValueError, match='model.loss_decode.activation'):
        build(seg['config'], teacher_ckpt=RANDOM_TEACHER,
              loss_decode=dict(type='mmdist.DISTLoss', activation='sigmoid'))
    binary = write_config(str(tmp_path / 't_bin.py'),
                          f"_base_ = [{seg['teacher_cfg']!r}]\n"
                          'model = dict(decode_head=dict(num_classes=2, out_channels=1, '
                          "loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True)))\n")
    with pytest.raises(ValueError, match='out_channels=1'):
        build(seg['config'], teacher_cfg=binary, teacher_ckpt=RANDOM_TEACHER)
