# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The value of every distiller's ``loss_dist_*``, computed independently of mmdist.

For each distiller, the expected loss comes from:
- the plain mmdet / mmseg / mmpretrain teacher, built from its own config and checkpoint
  (not the distiller's hidden teacher), fed the raw batch through its OWN data
  preprocessor; each teacher normalises differently from its student (mean, std and
  channel order);
- its head outputs turned into rows here (anchor-major, padding left out; for RoI heads
  the teacher's first box head on the RoIs the student sampled; the auxiliary head for
  ``loss_dist_aux``);
- DIST written out with scipy (Pearson correlation, softmax / sigmoid) in float64.
Only the student's own outputs are read from the distiller's loss call (forward hooks on
the student). The teachers' checkpoints have random BatchNorm statistics, so that folding
them into the convolutions (``teacher_fuse_conv_bn``, on by default) is not trivial.
"""
import copy
import importlib
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.structures import PixelData
from scipy import special, stats
from torch.nn.modules.batchnorm import _BatchNorm

from mmdist.registry import MODELS
from mmdist.testing import init_weights_of_unowned_parameters
from mmdist.testing._classification import (TEACHER_MEAN, TEACHER_STD, make_imagenet_shapes,
                                            write_classification_configs)
from mmdist.testing._detection import DET_CONFIGS
from mmdist.testing._detection import data_overrides as det_data
from mmdist.testing._detection import tiny_retinanet, tiny_two_stage, write_config
from mmdist.testing._segmentation import SEG_CONFIGS
from mmdist.testing._segmentation import data_overrides as seg_data
from mmdist.testing._segmentation import shrink_seg_model

#: A teacher normalisation unlike any student's (mmdet/mmseg/mmpretrain use ImageNet
#: mean/std on RGB): other constants, and BGR channel order.
TEACHER_NORM = dict(mean=[100.0, 110.0, 120.0], std=[50.0, 60.0, 70.0])
#: Relative tolerance of every loss value. Measured differences: 4e-8 to 2e-7 for the
#: detection and segmentation losses with and without BatchNorm folding; 1.7e-6 (8e-7
#: without folding) for classification (4 classes, 4 images: few samples per correlation).
#: The distiller computes in float32 and the teacher's input differs from its own
#: preprocessor's output by float rounding (at most 2.4e-7 here).
REL = 1e-5


pytestmark = pytest.mark.usefixtures('one_cpu_thread')  # tests/conftest.py


# --------------------------------------------------------------------- references
def dist_of_probabilities(p_s: np.ndarray, p_t: np.ndarray, tau: float = 1.0,
                          inter_weight: float = 1.0, intra_weight: float = 1.0) -> float:
    """DIST of (rows, C) probabilities from its definition (Huang et al. 2022), scipy:
    tau^2 (w_inter (1 - mean_rows pearson) + w_intra (1 - mean_columns pearson)), with
    the official code's eps added to the product of the centred vectors' norms."""
    def pearson(axis):  # scipy's r, with the official eps added to the norms' product
        norms = np.prod([np.linalg.norm(p - p.mean(axis, keepdims=True), axis=axis)
                         for p in (p_s, p_t)], axis=0)
        return stats.pearsonr(p_s, p_t, axis=axis).statistic * norms / (norms + 1e-8)

    inter, intra = pearson(1).mean(), pearson(0).mean()  # one per row; one per class
    return tau**2 * (inter_weight * (1 - inter) + intra_weight * (1 - intra))


def dist_reference(z_s: np.ndarray, z_t: np.ndarray, activation: str, tau: float = 1.0,
                   inter_weight: float = 1.0, intra_weight: float = 1.0) -> float:
    """DIST of (rows, C) logits, ``p = activation(z / tau)`` in float64."""
    act = (lambda z: special.softmax(z, axis=1)) if activation == 'softmax' else special.expit
    p_s = act(np.asarray(z_s, np.float64) / tau)
    p_t = act(np.asarray(z_t, np.float64) / tau)
    return dist_of_probabilities(p_s, p_t, tau, inter_weight, intra_weight)


def library_model(cfg: Config, scope: str) -> torch.nn.Module:
    """``cfg.model`` built by the library's own registry (``mmdet.registry.MODELS``, ...)
    in its scope, with the top-level data preprocessor merged as mmengine's Runner does."""
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in cfg.model:
        cfg.model.data_preprocessor = cfg.data_preprocessor
    with DefaultScope.overwrite_default_scope(scope):
        return importlib.import_module(f'{scope}.registry').MODELS.build(cfg.model)


def save_checkpoint(cfg_path: str, out: str, scope: str, seed: int = 7,
                    init_unowned: bool = False) -> str:
    """Build a config's model (PyTorch's default initialisation: logits that vary by
    O(1), not mmdet's near-constant prior), give its BatchNorms random statistics and
    affine parameters (so folding them is not a no-op) and save a plain checkpoint.
    ``init_unowned``: the library's init for parameters no PyTorch layer owns (DETR
    family: ``level_embed`` is created uninitialised)."""
    torch.manual_seed(seed)
    model = library_model(Config.fromfile(cfg_path), scope)
    if init_unowned:
        init_weights_of_unowned_parameters(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    torch.save(dict(meta=dict(note='test teacher'), state_dict=model.state_dict()), out)
    return out


def plain_model(cfg_path: str, ckpt: str, scope: str):
    """The plain model of a config and checkpoint (no mmdist code involved), in eval mode."""
    model = library_model(Config.fromfile(cfg_path), scope)
    load_checkpoint(model, ckpt, map_location='cpu', strict=True)
    return model.eval()


def build_distiller(cfg_path: str, scope: str, **model_overrides):
    """The distiller of a config (with ``model_overrides``), in training mode."""
    cfg = Config.fromfile(cfg_path)
    cfg.model.update(model_overrides)
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in cfg.model.student:
        cfg.model.data_preprocessor = cfg.data_preprocessor
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    return model.train(), cfg


class Outputs:
    """Forward hooks keeping the first output (and positional inputs) of modules."""

    def __init__(self, **modules):
        self.seen, self.handles = {}, []
        for name, module in modules.items():
            self.handles.append(module.register_forward_hook(self._keep(name)))

    def _keep(self, name):
        def hook(module, args, output):  # returns None: the output is not changed
            self.seen.setdefault(name, (args, output))
        return hook

    def __enter__(self):
        return self.seen

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def rel_close(actual: float, expected: float) -> None:
    assert actual == pytest.approx(expected, rel=REL), (actual, expected,
                                                        abs(actual / expected - 1))


# --------------------------------------------------------------------- detection
def det_raw_batch(cfg):
    """Two test-pipeline images (no random flip); the second cropped to 40 x 48, so the
    batch (padded to 64 x 64) has padding rows at every FPN level."""
    init_default_scope('mmdet')
    from mmdet.registry import DATASETS
    dataset = DATASETS.build((cfg.val_dataloader or cfg.test_dataloader).dataset)
    raw = pseudo_collate([dataset[0], dataset[1]])
    raw['inputs'][1] = raw['inputs'][1][:, :40, :48].contiguous()
    sample = raw['data_samples'][1]
    sample.set_metainfo(dict(img_shape=(40, 48)))
    boxes = sample.gt_instances.bboxes.tensor
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, 48)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, 40)
    keep = ((boxes[:, 2] - boxes[:, 0]) > 2) & ((boxes[:, 3] - boxes[:, 1]) > 2)
    sample.gt_instances = sample.gt_instances[keep]
    return raw


def anchor_rows(maps, num_classes, strides, img_shapes):
    """Rows of per-level (N, A*C, H, W) logit maps, written out: channel a*C + c at
    (n, h, w) is column c of row (n, h, w, a); rows of priors whose cell starts outside
    the image (ceil(img / stride) cells per side) are left out. One (rows, C) array per
    level."""
    levels = []
    for logits, stride in zip(maps, strides):
        z = logits.detach().double().numpy()
        n, channels, height, width = z.shape
        anchors = channels // num_classes
        z = z.reshape(n, anchors, num_classes, height, width).transpose(0, 3, 4, 1, 2)
        rows = []
        for i, (img_h, img_w) in enumerate(img_shapes):
            valid_h, valid_w = min(-(-img_h // stride), height), min(-(-img_w // stride), width)
            rows.append(z[i, :valid_h, :valid_w].reshape(-1, num_classes))
        levels.append(np.concatenate(rows))
    return levels


@pytest.fixture(scope='module')
def retina(tmp_path_factory, coco_root):
    tmp = str(tmp_path_factory.mktemp('retina_values'))
    preprocessor = dict(type='DetDataPreprocessor', bgr_to_rgb=False, pad_size_divisor=32,
                        **TEACHER_NORM)
    teacher_cfg = write_config(
        osp.join(tmp, 'teacher.py'),
        "_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']\n"
        f'model = {dict(tiny_retinanet(16, 32), data_preprocessor=preprocessor)!r}\n')
    teacher_ckpt = save_checkpoint(teacher_cfg, osp.join(tmp, 'teacher.pth'), 'mmdet')
    shipped = osp.join(DET_CONFIGS, 'dist_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py')
    loss_cls = dict(tau=2.0, inter_loss_weight=1.5, intra_loss_weight=0.5, loss_weight=3.0)
    config = write_config(
        osp.join(tmp, 'dist.py'),
        f'_base_ = [{shipped!r}]\n'
        f'model = dict(student={tiny_retinanet(8, 16)!r}, teacher_cfg={teacher_cfg!r}, '
        f'teacher_ckpt={teacher_ckpt!r}, loss_cls={loss_cls!r}, '
        'mimic=dict(loss_weight=2.5))\n' + det_data(coco_root))
    return dict(config=config, teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt)


@pytest.mark.parametrize('fuse', [False, True])
def test_dense_detection_loss_value(retina, fuse):
    """RetinaNet, ``dense_rows='anchor'``: loss_dist_cls = 3 * sum over FPN levels of
    DIST (sigmoid, tau 2, inter 1.5, intra 0.5) of anchor-major rows without padding
    rows; loss_dist_mimic = 2.5 * sum over levels of the MSE between connector(student
    FPN) and teacher FPN."""
    model, cfg = build_distiller(retina['config'], 'mmdet', teacher_fuse_conv_bn=fuse,
                                 dense_rows='anchor', mask_padding=True)
    raw = det_raw_batch(cfg)
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    student = model.student
    with Outputs(head=student.bbox_head, neck=student.neck) as seen:
        losses = model(**data, mode='loss')
    student_maps = seen['head'][1][0]
    student_fpn = seen['neck'][1]

    teacher = plain_model(retina['teacher_cfg'], retina['teacher_ckpt'], 'mmdet')
    teacher_data = teacher.data_preprocessor(copy.deepcopy(raw), False)
    with torch.no_grad():
        teacher_fpn = teacher.extract_feat(teacher_data['inputs'])
        teacher_maps = teacher.bbox_head(teacher_fpn)[0]

    strides = cfg.model.student.bbox_head.anchor_generator.strides
    num_classes = cfg.model.student.bbox_head.num_classes
    shapes = [(64, 64), (40, 48)]
    assert [s.img_shape[:2] for s in data['data_samples']] == shapes
    assert data['inputs'].shape[-2:] == teacher_data['inputs'].shape[-2:] == (64, 64)
    s_levels = anchor_rows(student_maps, num_classes, strides, shapes)
    t_levels = anchor_rows(teacher_maps, num_classes, strides, shapes)
    assert [len(rows) for rows in s_levels] == [
        9 * (8 * 8 + 5 * 6), 9 * (4 * 4 + 3 * 3), 9 * (2 * 2 + 2 * 2), 9 * 2, 9 * 2]
    expected = 3.0 * sum(dist_reference(s, t, 'sigmoid', tau=2.0, inter_weight=1.5,
                                        intra_weight=0.5)
                         for s, t in zip(s_levels, t_levels))
    rel_close(losses['loss_dist_cls'].item(), expected)

    mse = 0.0
    for connector, f_s, f_t in zip(model.mimic.connectors, student_fpn, teacher_fpn):
        weight = connector.weight.detach().double().numpy()[:, :, 0, 0]  # (C_t, C_s)
        bias = connector.bias.detach().double().numpy()
        mapped = np.einsum('ts,nshw->nthw', weight, f_s.detach().double().numpy())
        mapped += bias[None, :, None, None]
        mse += np.mean((mapped - f_t.double().numpy())**2)
    rel_close(losses['loss_dist_mimic'].item(), 2.5 * mse)


def official_dist(y_s: np.ndarray, y_t: np.ndarray, beta: float = 1.0,
                  gamma: float = 1.0) -> float:
    """The official detection DIST (MasKD ``mmrazor/models/losses/dist_kd.py``,
    ``use_sigmoid=True``) of one level's (N, A*C, H, W) classifier outputs, written out
    in numpy: ``transpose(1, 3).reshape(-1, A*C)`` (padding kept), sigmoid, then
    ``beta * (1 - mean_rows cos(centred rows)) + gamma * (1 - mean_columns cos(...))``
    with the cosine's ``+ 1e-8`` in the denominator."""

    def relation(a, b):  # 1 - mean over rows of the Pearson correlation, as coded there
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-8)
        return 1 - cos.mean()

    channels = y_s.shape[1]
    y_s, y_t = (special.expit(np.asarray(y, np.float64).transpose(0, 3, 2, 1)
                              .reshape(-1, channels)) for y in (y_s, y_t))
    return beta * relation(y_s, y_t) + gamma * relation(y_s.T, y_t.T)


@pytest.mark.parametrize('fuse', [False, True])
def test_dense_detection_loss_value_official_layout(retina, fuse):
    """The shipped RetinaNet config (``dense_rows='location'``, ``mask_padding=False``),
    DIST weight 1: loss_dist_cls = the official detection DIST summed over the FPN
    levels, on the same student and (plain mmdet) teacher classifier outputs, padding
    included. In float64 (both networks and the loss), so that the comparison is exact
    even on the top levels' two rows of near-constant scores of these random networks."""
    unit = dict(tau=1.0, inter_loss_weight=1.0, intra_loss_weight=1.0, loss_weight=1.0)
    model, cfg = build_distiller(retina['config'], 'mmdet', teacher_fuse_conv_bn=fuse,
                                 loss_cls=unit, mimic=None)
    assert (cfg.model.dense_rows, cfg.model.mask_padding) == ('location', False)
    model.double()
    raw = det_raw_batch(cfg)  # two images, one smaller: padding rows at every level
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    data['inputs'] = data['inputs'].double()
    with Outputs(head=model.student.bbox_head) as seen:
        losses = model(**data, mode='loss')
    student_maps = seen['head'][1][0]
    assert losses['loss_dist_cls'].dtype == torch.float64

    teacher = plain_model(retina['teacher_cfg'], retina['teacher_ckpt'], 'mmdet').double()
    with torch.no_grad():
        teacher_maps = teacher.bbox_head(teacher.extract_feat(teacher.data_preprocessor(
            copy.deepcopy(raw), False)['inputs'].double()))[0]
    assert student_maps[0].shape[1] == 9 * 6  # A * C scores per location
    expected = sum(official_dist(s.detach().numpy(), t.numpy())
                   for s, t in zip(student_maps, teacher_maps))
    # 1e-9 unfolded; the folded teacher's weights were folded in float32.
    assert losses['loss_dist_cls'].item() == pytest.approx(expected, rel=1e-7)
    # The per-anchor layout without padding is another loss on the same logits.
    strides = cfg.model.student.bbox_head.anchor_generator.strides
    shapes = [(64, 64), (40, 48)]
    anchor_layout = sum(dist_reference(s, t, 'sigmoid') for s, t in zip(
        anchor_rows(student_maps, 6, strides, shapes), anchor_rows(teacher_maps, 6, strides,
                                                                   shapes)))
    assert abs(anchor_layout / expected - 1) > 1e-3


@pytest.fixture(scope='module')
def faster(tmp_path_factory, coco_root):
    tmp = str(tmp_path_factory.mktemp('faster_values'))
    teacher = Config.fromstring(
        "_base_ = ['mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py']\n",
        '.py')
    tiny_two_stage(teacher, 16, 32)
    teacher.model.data_preprocessor.update(bgr_to_rgb=False, **TEACHER_NORM)
    teacher_cfg = osp.join(tmp, 'teacher.py')
    teacher.dump(teacher_cfg)
    teacher_ckpt = save_checkpoint(teacher_cfg, osp.join(tmp, 'teacher.pth'), 'mmdet')
    student = Config.fromstring(
        "_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py']\n", '.py')
    tiny_two_stage(student, 8, 16)
    shipped = osp.join(DET_CONFIGS,
                       'dist_cascade-mask-rcnn-x101-64x4d_faster-rcnn-r50_fpn_2x_coco.py')
    loss_cls = dict(tau=1.5, intra_loss_weight=2.0, loss_weight=0.5)
    config = write_config(
        osp.join(tmp, 'dist.py'),
        f'_base_ = [{shipped!r}]\n'
        f'model = dict(student=dict(_delete_=True, **{student.model.to_dict()!r}), '
        f'teacher_cfg={teacher_cfg!r}, teacher_ckpt={teacher_ckpt!r}, '
        f'loss_cls={loss_cls!r})\n' + det_data(coco_root))
    return dict(config=config, teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt)


def test_roi_detection_loss_value(faster):
    """Faster R-CNN student, Cascade Mask R-CNN teacher: loss_dist_cls = 0.5 * DIST
    (softmax over C+1, tau 1.5, intra 2) of the student's RoI logits and those of the
    teacher's first-stage box head on the same RoIs (the ones the student sampled)."""
    model, cfg = build_distiller(faster['config'], 'mmdet')
    raw = det_raw_batch(cfg)
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    roi_head = model.student.roi_head
    with Outputs(extractor=roi_head.bbox_roi_extractor, box=roi_head.bbox_head) as seen:
        losses = model(**data, mode='loss')
    rois = seen['extractor'][0][1]  # (R, 5): batch index, x1, y1, x2, y2
    student_logits = seen['box'][1][0]
    assert rois.shape[0] == student_logits.shape[0] == 2 * 32  # sampler.num per image
    assert len(rois[:, 0].unique()) == 2

    teacher = plain_model(faster['teacher_cfg'], faster['teacher_ckpt'], 'mmdet')
    t_roi = teacher.roi_head
    with torch.no_grad():
        feats = teacher.extract_feat(teacher.data_preprocessor(copy.deepcopy(raw), False)
                                     ['inputs'])
        extractor = t_roi.bbox_roi_extractor[0]
        roi_feats = extractor(feats[:extractor.num_inputs], rois)
        teacher_logits = t_roi.bbox_head[0](roi_feats)[0]
    assert teacher_logits.shape == student_logits.shape == (64, 7)  # 6 classes + background
    expected = 0.5 * dist_reference(student_logits.detach().numpy(), teacher_logits.numpy(),
                                    'softmax', tau=1.5, intra_weight=2.0)
    rel_close(losses['loss_dist_cls'].item(), expected)


# --------------------------------------------------------------------- segmentation
SEGFORMER_PSPNET = 'dist_segformer-mit-b5_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py'
SEGFORMER_SEGFORMER = 'dist_segformer-mit-b5_segformer-mit-b0_8xb1-160k_cityscapes-1024x1024.py'
MASK2FORMER_PSPNET = 'dist_mask2former-swin-b_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py'
DEEPLABV3 = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'
SEGFORMER = 'mmseg::segformer/segformer_mit-b5_8xb1-160k_cityscapes-1024x1024.py'
MASK2FORMER = 'mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py'


def seg_pair(tmp: str, root: str, shipped: str, teacher_base: str, **model_overrides) -> dict:
    """The shipped config ``shipped`` with its student shrunk and, as teacher, the stock
    mmseg config ``teacher_base`` shrunk, in its own normalisation (TEACHER_NORM, BGR),
    with a checkpoint of random BatchNorm statistics."""
    teacher = Config.fromstring(f'_base_ = [{teacher_base!r}]\n', '.py')
    shrink_seg_model(teacher, 16)
    teacher.model.data_preprocessor.update(bgr_to_rgb=False, **TEACHER_NORM)
    teacher_cfg = osp.join(tmp, 'teacher.py')
    teacher.dump(teacher_cfg)
    teacher_ckpt = save_checkpoint(teacher_cfg, osp.join(tmp, 'teacher.pth'), 'mmseg')
    shipped = osp.join(SEG_CONFIGS, shipped)
    student = Config.fromfile(shipped)
    student.model = student.model.student
    shrink_seg_model(student, 8)
    model = dict(student=dict(_delete_=True, **student.model.to_dict()),
                 teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt, **model_overrides)
    config = write_config(osp.join(tmp, 'dist.py'),
                          f'_base_ = [{shipped!r}]\nmodel = {model!r}\n' + seg_data(root))
    return dict(config=config, teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt)


@pytest.fixture(scope='module')
def seg(tmp_path_factory, cityscapes_root):
    return seg_pair(str(tmp_path_factory.mktemp('seg_values')), cityscapes_root,
                    'dist_deeplabv3-r101-d8_pspnet-r18-d8_8xb2-40k_cityscapes-512x1024.py',
                    DEEPLABV3)


def seg_raw_batch(cfg):
    """Two test-pipeline images (32 x 64, no random flip); the second cropped to 24 x 40,
    so the batch (padded to the 32 x 64 crop size, labels with 255) has padding."""
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    raw = pseudo_collate([dataset[0], dataset[1]])
    raw['inputs'][1] = raw['inputs'][1][:, :24, :40].contiguous()
    sample = raw['data_samples'][1]
    sample.gt_sem_seg = PixelData(data=sample.gt_sem_seg.data[:, :24, :40].contiguous())
    sample.set_metainfo(dict(img_shape=(24, 40), ori_shape=(24, 40)))
    return raw


def pixel_rows(logits, labels, every_pixel=False):
    """(N, C, h, w) logits (tensor or array) -> (valid pixels, C) rows, valid = the label
    at the logit's pixel (nearest downsampling of the (N, H, W) labels) is not 255 (all
    pixels with ``every_pixel``)."""
    z = logits.detach().double().numpy() if torch.is_tensor(logits) else np.asarray(logits)
    n, num_classes, h, w = z.shape
    height, width = labels.shape[-2:]
    picked = labels[:, (np.arange(h) * height) // h][:, :, (np.arange(w) * width) // w]
    rows = z.transpose(0, 2, 3, 1).reshape(-1, num_classes)
    return rows if every_pixel else rows[picked.reshape(-1) != 255]


def bilinear_reference(z: np.ndarray, size) -> np.ndarray:
    """(N, C, h, w) -> (N, C, *size) bilinear resize with half-pixel centres
    (``align_corners=False``: source ``(i + 0.5) * in / out - 0.5``, clamped at 0 and at
    the last pixel), written out in numpy."""
    def weights(n_in: int, n_out: int) -> np.ndarray:
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0)
        low = np.floor(src).astype(int)
        high, frac = np.minimum(low + 1, n_in - 1), src - low
        matrix = np.zeros((n_out, n_in))
        np.add.at(matrix, (np.arange(n_out), low), 1 - frac)
        np.add.at(matrix, (np.arange(n_out), high), frac)
        return matrix

    z = np.asarray(z, np.float64)
    return np.einsum('ih,nchw,jw->ncij', weights(z.shape[2], size[0]), z,
                     weights(z.shape[3], size[1]))


def seg_run(pair, **overrides):
    """The distiller's losses on :func:`seg_raw_batch` with the student's decode (and
    auxiliary) logits, the plain teacher and its own preprocessing of the batch, the
    labels (N, H, W)."""
    model, cfg = build_distiller(pair['config'], 'mmseg', **overrides)
    raw = seg_raw_batch(cfg)
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    student = model.student
    heads = dict(decode=student.decode_head.conv_seg)
    if getattr(student, 'auxiliary_head', None) is not None:
        heads['aux'] = student.auxiliary_head.conv_seg
    with Outputs(**heads) as seen:
        losses = model(**data, mode='loss')
    teacher = plain_model(pair['teacher_cfg'], pair['teacher_ckpt'], 'mmseg')
    # Its preprocessor in training mode pads to the crop size, as the student's does.
    teacher_data = teacher.data_preprocessor(copy.deepcopy(raw), True)
    assert teacher_data['inputs'].shape == data['inputs'].shape == (2, 3, 32, 64)
    labels = np.stack([s.gt_sem_seg.data[0].numpy() for s in data['data_samples']])
    assert (labels[1, 24:] == 255).all() and (labels[1, :, 40:] == 255).all()
    student_logits = {name: output for name, (_, output) in seen.items()}
    return losses, student_logits, teacher, teacher_data['inputs'], labels


@pytest.mark.parametrize('mask_ignored', [True, False])
@pytest.mark.parametrize('fuse', [False, True])
def test_segmentation_decode_and_aux_loss_values(seg, fuse, mask_ignored):
    """PSPNet student, DeepLabV3 teacher, FCN auxiliary heads: loss_dist_decode =
    DIST (softmax) of the decode heads' logits, loss_dist_aux = 0.4 * DIST of the
    auxiliary heads' logits, on the pixels whose label is not 255 (``mask_ignored``), or
    on every pixel of the padded batch (the shipped 40k config, as the official code)."""
    losses, student, teacher, inputs, labels = seg_run(seg, teacher_fuse_conv_bn=fuse,
                                                       mask_ignored=mask_ignored)
    with torch.no_grad():
        feats = teacher.extract_feat(inputs)
        teacher_decode = teacher.decode_head(feats)
        teacher_aux = teacher.auxiliary_head(feats)
    for key, weight, student_logits, teacher_logits in (
            ('loss_dist_decode', 1.0, student['decode'], teacher_decode),
            ('loss_dist_aux', 0.4, student['aux'], teacher_aux)):
        assert student_logits.shape == teacher_logits.shape == (2, 19, 4, 8)
        s_rows, t_rows = (pixel_rows(logits, labels, every_pixel=not mask_ignored)
                          for logits in (student_logits, teacher_logits))
        # Ignored bands and padding are left out, or all 64 pixels are compared.
        assert (32 < len(s_rows) < 64) if mask_ignored else len(s_rows) == 64
        expected = weight * dist_reference(s_rows, t_rows, 'softmax')
        rel_close(losses[key].item(), expected)


@pytest.fixture(scope='module')
def segformer_pspnet(tmp_path_factory, cityscapes_root):
    return seg_pair(str(tmp_path_factory.mktemp('segformer_pspnet')), cityscapes_root,
                    SEGFORMER_PSPNET, SEGFORMER)


def test_segformer_teacher_cnn_student_loss_values(segformer_pspnet):
    """SegFormer teacher (logits at 1/4: 8 x 16), PSPNet student (1/8: 4 x 8): the plain
    teacher's decode logits resized bilinearly to 4 x 8; loss_dist_decode = DIST of them
    and the student's decode logits, loss_dist_aux = 0.4 * DIST of them and the student's
    auxiliary logits (the teacher has no auxiliary head)."""
    losses, student, teacher, inputs, labels = seg_run(segformer_pspnet)
    assert not teacher.with_auxiliary_head
    with torch.no_grad():
        teacher_logits = teacher.decode_head(teacher.extract_feat(inputs))
    assert teacher_logits.shape == (2, 19, 8, 16)
    t_rows = pixel_rows(bilinear_reference(teacher_logits.numpy(), (4, 8)), labels)
    for key, weight, name in (('loss_dist_decode', 1.0, 'decode'), ('loss_dist_aux', 0.4, 'aux')):
        assert student[name].shape == (2, 19, 4, 8)
        s_rows = pixel_rows(student[name], labels)
        assert 32 < len(s_rows) < 64
        rel_close(losses[key].item(), weight * dist_reference(s_rows, t_rows, 'softmax'))


@pytest.fixture(scope='module')
def cnn_segformer(tmp_path_factory, cityscapes_root):
    return seg_pair(str(tmp_path_factory.mktemp('cnn_segformer')), cityscapes_root,
                    SEGFORMER_SEGFORMER, DEEPLABV3)


def test_cnn_teacher_segformer_student_loss_value(cnn_segformer):
    """DeepLabV3 teacher (1/8: 4 x 8), SegFormer student (1/4: 8 x 16): the teacher's
    logits resized bilinearly up to 8 x 16, pixels (and the ignore mask) at 8 x 16;
    no auxiliary term (the student has no auxiliary head)."""
    losses, student, teacher, inputs, labels = seg_run(cnn_segformer)
    with torch.no_grad():
        teacher_logits = teacher.decode_head(teacher.extract_feat(inputs))
    assert teacher_logits.shape == (2, 19, 4, 8) and student['decode'].shape == (2, 19, 8, 16)
    t_rows = pixel_rows(bilinear_reference(teacher_logits.numpy(), (8, 16)), labels)
    s_rows = pixel_rows(student['decode'], labels)
    assert 128 < len(s_rows) < 256
    rel_close(losses['loss_dist_decode'].item(), dist_reference(s_rows, t_rows, 'softmax'))
    assert 'loss_dist_aux' not in losses


@pytest.fixture(scope='module', params=[MASK2FORMER_PSPNET, SEGFORMER_SEGFORMER])
def mask2former_teacher(request, tmp_path_factory, cityscapes_root):
    return seg_pair(str(tmp_path_factory.mktemp('mask2former')), cityscapes_root,
                    request.param, MASK2FORMER)


def test_mask2former_teacher_loss_values(mask2former_teacher):
    """Mask2Former teacher, PSPNet (1/8) or SegFormer (1/4) student: the teacher's
    per-pixel distribution is the semantic map S of the plain teacher's own ``predict``
    (asked for an image of the student's logit size) normalised over classes;
    loss_dist_decode (tau 2) compares softmax(z_s / 2) with S**(1/2) normalised, and for
    PSPNet loss_dist_aux = 0.4 * DIST (tau 1) of its auxiliary logits and S normalised."""
    from mmseg.structures import SegDataSample
    losses, student, teacher, inputs, labels = seg_run(
        mask2former_teacher, loss_decode=dict(type='mmdist.DISTLoss', tau=2.0))
    size = tuple(student['decode'].shape[-2:])
    assert size in ((4, 8), (8, 16))
    metas = dict(img_shape=size, pad_shape=size, ori_shape=size)
    with torch.no_grad():
        predictions = teacher.predict(inputs, [SegDataSample(metainfo=metas) for _ in range(2)])
    semantic = np.stack([p.seg_logits.data.double().numpy() for p in predictions])
    assert semantic.shape == (2, 19, *size) and semantic.min() >= 0
    assert not np.allclose(semantic.sum(1), 1)  # not a distribution before normalising
    s_map = pixel_rows(semantic, labels)
    terms = [('loss_dist_decode', 1.0, 'decode', 2.0)]
    if 'aux' in student:
        terms.append(('loss_dist_aux', 0.4, 'aux', 1.0))
    assert sorted(k for k in losses if k.startswith('loss_dist')) == sorted(t[0] for t in terms)
    for key, weight, name, tau in terms:
        s_rows = pixel_rows(student[name], labels)
        assert size[0] * size[1] < len(s_rows) < 2 * size[0] * size[1]
        p_s = special.softmax(s_rows / tau, axis=1)
        p_t = s_map**(1 / tau) / (s_map**(1 / tau)).sum(1, keepdims=True)
        rel_close(losses[key].item(), weight * dist_of_probabilities(p_s, p_t, tau))


# --------------------------------------------------------------------- classification
@pytest.fixture(scope='module')
def cls(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet_values'))
    make_imagenet_shapes(root)
    paths = write_classification_configs(str(tmp_path_factory.mktemp('cls_values')), root)
    save_checkpoint(paths['teacher_cfg'], paths['teacher_ckpt'], 'mmpretrain')
    return paths


def test_classification_loss_value(cls):
    """ResNet-18 student, ResNet-34 teacher (own mean/std): loss_dist_cls = 2 (the
    shipped, official weight) * DIST (softmax) of the student's logits and the plain
    mmpretrain teacher's."""
    model, cfg = build_distiller(cls['config'], 'mmpretrain')
    assert Config.fromfile(cls['teacher_cfg']).data_preprocessor.mean == TEACHER_MEAN
    assert Config.fromfile(cls['teacher_cfg']).data_preprocessor.std == TEACHER_STD
    init_default_scope('mmpretrain')
    from mmpretrain.registry import DATASETS
    dataset = DATASETS.build(cfg.val_dataloader.dataset)  # no random flip
    raw = pseudo_collate([dataset[i] for i in range(4)])
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    with Outputs(fc=model.student.head.fc) as seen:
        losses = model(**data, mode='loss')
    teacher = plain_model(cls['teacher_cfg'], cls['teacher_ckpt'], 'mmpretrain')
    with torch.no_grad():
        teacher_logits = teacher(**teacher.data_preprocessor(copy.deepcopy(raw), False),
                                 mode='tensor')
    assert cfg.model.loss_cls.loss_weight == 2.0
    expected = dist_reference(seen['fc'][1].detach().numpy(), teacher_logits.numpy(), 'softmax')
    rel_close(losses['loss_dist_cls'].item(), 2.0 * expected)


# --------------------------------------------------------------------- detection: RTMDet,
# YOLOX and cross-head distillation
def all_calls(module):
    """A forward hook keeping the first positional input of every call of ``module`` (a
    classifier shared by the FPN levels runs once per level); returns (inputs, handle)."""
    inputs = []
    handle = module.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    return inputs, handle


def conv2d_reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A stride-1 'same' convolution (odd kernel, zero padding) written out in numpy:
    (N, C_in, H, W), (C_out, C_in, k, k), (C_out,) -> (N, C_out, H, W)."""
    k = weight.shape[-1]
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    height, width = x.shape[-2:]
    out = np.zeros((x.shape[0], weight.shape[0], height, width))
    for dy in range(k):
        for dx in range(k):
            out += np.einsum('oc,nchw->nohw', weight[:, :, dy, dx],
                             xp[:, :, dy:dy + height, dx:dx + width])
    return out + bias[None, :, None, None]


def dense_value_pair(tmp_path_factory, coco_root, pair, preprocessor):
    """A shrunk shipped config of ``pair`` whose teacher normalises with ``preprocessor``,
    its checkpoint with PyTorch's initialisation and random BatchNorm statistics."""
    from mmdist.testing._detection import write_dense_configs
    tmp = str(tmp_path_factory.mktemp(pair))
    paths = write_dense_configs(tmp, coco_root, pair,
                                dict(data_preprocessor=preprocessor))
    save_checkpoint(paths['teacher_cfg'], paths['teacher_ckpt'], 'mmdet')
    return paths


#: A DIST setting unlike the default, for the new paths.
LOSS_SETTING = dict(tau=1.5, inter_loss_weight=0.5, intra_loss_weight=2.0, loss_weight=1.5)


def dist_settings_reference(s_levels, t_levels) -> float:
    return LOSS_SETTING['loss_weight'] * sum(
        dist_reference(s, t, 'sigmoid', tau=LOSS_SETTING['tau'],
                       inter_weight=LOSS_SETTING['inter_loss_weight'],
                       intra_weight=LOSS_SETTING['intra_loss_weight'])
        for s, t in zip(s_levels, t_levels, strict=True))


def plain_teacher_feats(paths, raw):
    teacher = plain_model(paths['teacher_cfg'], paths['teacher_ckpt'], 'mmdet')
    with torch.no_grad():
        return teacher, teacher.extract_feat(teacher.data_preprocessor(copy.deepcopy(raw),
                                                                       False)['inputs'])


@pytest.fixture(scope='module')
def rtmdet(tmp_path_factory, coco_root):
    # BGR -> RGB and other constants: unlike the RTMDet student's BGR normalisation.
    return dense_value_pair(tmp_path_factory, coco_root, 'rtmdet',
                            dict(type='DetDataPreprocessor', bgr_to_rgb=True, **TEACHER_NORM))


@pytest.mark.parametrize('fuse', [False, True])
def test_rtmdet_loss_value(rtmdet, fuse):
    """RTMDet-s student, RTMDet-l teacher (RTMDetSepBNHead: per-level class convs with
    shared conv weights and per-level BatchNorms), the shipped config shrunk:
    loss_dist_cls = DIST of the student's class logits and the plain mmdet teacher's
    (its full head forward), rows of the levels of stride 8, 16, 32 without padding."""
    model, cfg = build_distiller(rtmdet['config'], 'mmdet', teacher_fuse_conv_bn=fuse,
                                 loss_cls=LOSS_SETTING)
    raw = det_raw_batch(cfg)
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    with Outputs(head=model.student.bbox_head) as seen:
        losses = model(**data, mode='loss')
    teacher, feats = plain_teacher_feats(rtmdet, raw)
    assert type(teacher.bbox_head).__name__ == 'RTMDetSepBNHead'
    with torch.no_grad():
        teacher_maps = teacher.bbox_head(feats)[0]
    shapes = [(64, 64), (40, 48)]
    s_levels = anchor_rows(seen['head'][1][0], 6, [8, 16, 32], shapes)
    t_levels = anchor_rows(teacher_maps, 6, [8, 16, 32], shapes)
    assert [len(rows) for rows in s_levels] == [8 * 8 + 5 * 6, 4 * 4 + 3 * 3, 2 * 2 + 2 * 2]
    rel_close(losses['loss_dist_cls'].item(), dist_settings_reference(s_levels, t_levels))


@pytest.fixture(scope='module')
def yolox(tmp_path_factory, coco_root):
    """The demo's YOLOX distillation config (no shipped COCO one) on the test data, its
    teacher with its own normalisation."""
    from mmdist.testing import shipped_config_dir
    tmp = str(tmp_path_factory.mktemp('yolox_values'))
    demo = shipped_config_dir('demo')
    preprocessor = dict(type='DetDataPreprocessor', bgr_to_rgb=True, pad_size_divisor=32,
                        **TEACHER_NORM)
    teacher_cfg = write_config(
        osp.join(tmp, 'teacher.py'),
        f"_base_ = [{osp.join(demo, 'det_yolox_teacher.py')!r}]\n"
        f'model = dict(data_preprocessor={preprocessor!r})\n')
    teacher_ckpt = save_checkpoint(teacher_cfg, osp.join(tmp, 'teacher.pth'), 'mmdet')
    config = write_config(
        osp.join(tmp, 'dist.py'),
        f"_base_ = [{osp.join(demo, 'det_yolox_student_dist.py')!r}]\n"
        f'model = dict(teacher_cfg={teacher_cfg!r}, teacher_ckpt={teacher_ckpt!r})\n' +
        det_data(coco_root, validate=False))
    return dict(config=config, teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt)


def yolox_joint_logit(cls_score, objectness) -> np.ndarray:
    """logit(sigmoid(cls) * sigmoid(obj)) in float64."""
    p = special.expit(cls_score.detach().double().numpy()) * special.expit(
        objectness.detach().double().numpy())
    return np.log(p) - np.log1p(-p)


@pytest.mark.parametrize('score', ['joint', 'class'])
def test_yolox_loss_value(yolox, score):
    """YOLOX student and teacher: loss_dist_cls = DIST of the joint scores
    sigmoid(cls) * sigmoid(obj) (``score='joint'``) or of the class logits alone
    (``'class'``) of the student and of the plain mmdet teacher, padding rows left out."""
    model, cfg = build_distiller(yolox['config'], 'mmdet', loss_cls=LOSS_SETTING, score=score)
    raw = det_raw_batch(cfg)
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    with Outputs(head=model.student.bbox_head) as seen:
        losses = model(**data, mode='loss')
    s_cls, _, s_obj = seen['head'][1]
    teacher, feats = plain_teacher_feats(yolox, raw)
    with torch.no_grad():
        t_cls, _, t_obj = teacher.bbox_head(feats)
    if score == 'joint':
        s_maps = [torch.from_numpy(yolox_joint_logit(c, o)) for c, o in zip(s_cls, s_obj)]
        t_maps = [torch.from_numpy(yolox_joint_logit(c, o)) for c, o in zip(t_cls, t_obj)]
    else:
        s_maps, t_maps = s_cls, t_cls
    shapes = [(64, 64), (40, 48)]
    expected = dist_settings_reference(anchor_rows(s_maps, 6, [8, 16, 32], shapes),
                                       anchor_rows(t_maps, 6, [8, 16, 32], shapes))
    rel_close(losses['loss_dist_cls'].item(), expected)


@pytest.fixture(scope='module')
def crosshead(tmp_path_factory, coco_root):
    preprocessor = dict(type='DetDataPreprocessor', bgr_to_rgb=False, pad_size_divisor=32,
                        **TEACHER_NORM)
    return {pair: dense_value_pair(tmp_path_factory, coco_root, pair, preprocessor)
            for pair in ('crosshead_gfl_retinanet', 'crosshead_rtmdet_atss')}


#: pair -> (student classifier, the teacher's classifier of a level, paired student
#: levels, paired teacher levels, strides).
CROSS = {
    'crosshead_gfl_retinanet': ('retina_cls', lambda head, level: head.gfl_cls,
                                [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [8, 16, 32, 64, 128]),
    'crosshead_rtmdet_atss': ('atss_cls', lambda head, level: head.rtm_cls[level],
                              [0, 1, 2], [0, 1, 2], [8, 16, 32]),
}


@pytest.mark.parametrize('pair', list(CROSS))
def test_cross_head_loss_value(crosshead, pair):
    """Cross-head DIST, the shipped configs shrunk: GFL teacher -> RetinaNet student (9
    anchors vs 1 prior per location, 5 levels), RTMDet teacher (per-level 1x1 classifiers,
    3 levels) -> ATSS student (5 levels: strides 64, 128 unpaired). Written out: the
    student's classifier inputs (its class-branch features), the 1x1 adapter (16 -> 32
    channels, the distiller's own weights) and the plain mmdet teacher's classifier conv of
    the paired level in numpy, against the plain teacher's own class logits; DIST of their
    rows without padding, summed over the paired levels."""
    classifier, teacher_classifier, s_levels, t_levels, strides = CROSS[pair]
    model, cfg = build_distiller(crosshead[pair]['config'], 'mmdet', loss_cls=LOSS_SETTING)
    assert type(model.unit).__name__ == 'CrossHead'
    raw = det_raw_batch(cfg)
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    inputs, handle = all_calls(getattr(model.student.bbox_head, classifier))
    try:
        losses = model(**data, mode='loss')
    finally:
        handle.remove()
    assert len(inputs) == 5  # the student's shared classifier, once per level
    teacher, feats = plain_teacher_feats(crosshead[pair], raw)
    with torch.no_grad():
        teacher_maps = teacher.bbox_head(feats)[0]
    cross_maps, own_maps = [], []
    for adapter, s_level, t_level in zip(model.unit.adapters, s_levels, t_levels, strict=True):
        weight = adapter.weight.detach().double().numpy()[:, :, 0, 0]  # (32, 16)
        assert weight.shape == (32, 16)
        adapted = np.einsum('ts,nshw->nthw', weight, inputs[s_level].detach().double().numpy())
        adapted += adapter.bias.detach().double().numpy()[None, :, None, None]
        conv = teacher_classifier(teacher.bbox_head, t_level)
        cross_maps.append(torch.from_numpy(conv2d_reference(
            adapted, conv.weight.detach().double().numpy(),
            conv.bias.detach().double().numpy())))
        own_maps.append(teacher_maps[t_level])
    shapes = [(64, 64), (40, 48)]
    expected = dist_settings_reference(anchor_rows(cross_maps, 6, strides, shapes),
                                       anchor_rows(own_maps, 6, strides, shapes))
    rel_close(losses['loss_dist_cls'].item(), expected)


# --------------------------------------------------------------------- DETR family
def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    cx, cy, w, h = np.asarray(boxes, np.float64).T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def giou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) generalised IoU of (n, 4) and (m, 4) xyxy boxes (Rezatofighi et al. 2019)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inner = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) -
                    np.maximum(a[:, None, :2], b[None, :, :2]), 0, None).prod(-1)
    union = area_a[:, None] + area_b[None] - inner
    hull = (np.maximum(a[:, None, 2:], b[None, :, 2:]) -
            np.minimum(a[:, None, :2], b[None, :, :2])).prod(-1)
    return inner / union - (hull - union) / hull


def hungarian_pairs(s_logits, s_boxes, t_logits, t_boxes, img_shape, costs):
    """Student and teacher query indices matched on one image by scipy's
    ``linear_sum_assignment``, on DETR's matching cost written out in numpy: the teacher's
    queries as targets (argmax class, box); class cost (focal for sigmoid heads, minus the
    softmax probability otherwise) + L1 of normalised cxcywh + minus GIoU of pixel boxes,
    weighted as the student's ``train_cfg.assigner.match_costs``."""
    from scipy.optimize import linear_sum_assignment
    labels = t_logits.argmax(1)
    weights = {c['type']: c['weight'] for c in costs}
    if 'FocalLossCost' in weights:
        p = special.expit(s_logits)
        alpha, gamma, eps = 0.25, 2.0, 1e-12
        positive = -np.log(p + eps) * alpha * (1 - p)**gamma
        negative = -np.log(1 - p + eps) * (1 - alpha) * p**gamma
        cls_cost = weights['FocalLossCost'] * (positive - negative)[:, labels]
    else:
        cls_cost = -weights['ClassificationCost'] * special.softmax(s_logits, 1)[:, labels]
    l1 = np.abs(s_boxes[:, None] - t_boxes[None]).sum(-1)
    height, width = img_shape
    scale = np.array([width, height, width, height], np.float64)
    giou = giou_matrix(cxcywh_to_xyxy(s_boxes) * scale, cxcywh_to_xyxy(t_boxes) * scale)
    cost = cls_cost + weights['BBoxL1Cost'] * l1 - weights['IoUCost'] * giou
    return linear_sum_assignment(cost)


#: Distillation settings of the value tests: DIST unlike the default, box terms on.
DETR_SETTINGS = dict(loss_cls=dict(tau=2.0, inter_loss_weight=1.5, intra_loss_weight=0.5,
                                   loss_weight=3.0),
                     loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
                     loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0))


@pytest.fixture(scope='module')
def detr_pairs(tmp_path_factory, coco_root):
    from mmdist.testing._detection import write_detr_configs
    pairs = {}
    for pair in ('dino', 'detr'):
        tmp = str(tmp_path_factory.mktemp(f'{pair}_values'))
        settings = copy.deepcopy(DETR_SETTINGS)
        if pair == 'detr':
            settings['loss_cls']['activation'] = 'softmax'
        preprocessor = dict(type='DetDataPreprocessor', bgr_to_rgb=False, pad_size_divisor=1,
                            **TEACHER_NORM)
        paths = write_detr_configs(tmp, coco_root, pair,
                                   teacher_model=dict(data_preprocessor=preprocessor),
                                   **settings)
        save_checkpoint(paths['teacher_cfg'], paths['teacher_ckpt'], 'mmdet',
                        init_unowned=True)
        pairs[pair] = paths
    return pairs


@pytest.mark.parametrize('pair,layers', [('dino', 'all'), ('dino', 'last'), ('detr', 'last')])
def test_detr_family_loss_values(detr_pairs, pair, layers):
    """DINO (sigmoid; 30 student queries after its denoising queries, 40 teacher queries,
    4 vs 5 feature levels, ResNet vs Swin) and DETR (softmax; 30 student vs 20 teacher
    queries): per image the pairs of scipy's Hungarian matching on the numpy matching
    cost; loss_dist_cls = 3 * sum over the distilled decoder layers of DIST (tau 2, inter
    1.5, intra 0.5) of the matched class logits of both images; loss_dist_bbox = 5 *
    sum over layers of the teacher-confidence-weighted mean L1 of normalised cxcywh
    boxes, loss_dist_iou = 2 * the same of 1 - GIoU of pixel boxes. The teacher is the
    plain mmdet model on its own preprocessor's batch (other mean / std / channels)."""
    paths = detr_pairs[pair]
    model, cfg = build_distiller(paths['config'], 'mmdet', query_layers=layers)
    init_weights_of_unowned_parameters(model.student)  # DINO's level_embed
    # The random DETR's queries are near-alike: in float32 two teacher queries swap in
    # one image's matching (a cost difference below float32 rounding), so it runs in
    # float64 (mmdet's DINO denoising queries are float32 only).
    dtype = torch.float64 if pair == 'detr' else torch.float32
    model.to(dtype)
    raw = det_raw_batch(cfg)  # two images, the second 40 x 48
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    data['inputs'] = data['inputs'].to(dtype)
    for sample in data['data_samples']:  # mmdet's own matching cost reads them
        sample.gt_instances.bboxes = sample.gt_instances.bboxes.to(dtype)
    student = model.student
    dn_meta = {}
    head_loss = student.bbox_head.loss

    def recording_loss(*args, **kwargs):  # reads DINO's dn_meta on the way
        dn_meta.update(kwargs.get('dn_meta') or {})
        return head_loss(*args, **kwargs)

    student.bbox_head.loss = recording_loss
    with Outputs(head=student.bbox_head) as seen:
        losses = model(**data, mode='loss')
    s_logits, s_boxes = (t.detach().double().numpy() for t in seen['head'][1])
    num_dn = dn_meta.get('num_denoising_queries', 0)
    assert (num_dn > 0) == (pair == 'dino')
    s_logits, s_boxes = s_logits[:, :, num_dn:], s_boxes[:, :, num_dn:]
    assert s_logits.shape[2] == 30

    teacher = plain_model(paths['teacher_cfg'], paths['teacher_ckpt'], 'mmdet').to(dtype)
    teacher_data = teacher.data_preprocessor(copy.deepcopy(raw), False)
    with torch.no_grad():
        feats = teacher.extract_feat(teacher_data['inputs'].to(dtype))
        t_logits, t_boxes = teacher.bbox_head(
            **teacher.forward_transformer(feats, teacher_data['data_samples']))
    t_logits, t_boxes = t_logits[-1].double().numpy(), t_boxes[-1].double().numpy()
    assert t_logits.shape[1] == (40 if pair == 'dino' else 20)

    shapes = [(64, 64), (40, 48)]
    costs = cfg.model.student.train_cfg.assigner.match_costs
    pairs = [hungarian_pairs(s_logits[-1, i], s_boxes[-1, i], t_logits[i], t_boxes[i],
                             shapes[i], costs) for i in range(2)]
    assert [len(rows) for rows, _ in pairs] == [min(30, t_logits.shape[1])] * 2
    distilled = range(s_logits.shape[0]) if layers == 'all' else [s_logits.shape[0] - 1]
    activation = 'sigmoid' if pair == 'dino' else 'softmax'
    t_rows = np.concatenate([t_logits[i, cols] for i, (_, cols) in enumerate(pairs)])
    cls_expected = 3.0 * sum(dist_reference(
        np.concatenate([s_logits[layer, i, rows] for i, (rows, _) in enumerate(pairs)]),
        t_rows, activation, tau=2.0, inter_weight=1.5, intra_weight=0.5)
        for layer in distilled)
    rel_close(losses["loss_dist_cls"].item(), cls_expected)

    if pair == 'dino':
        confidence = special.expit(t_rows).max(1)
    else:
        confidence = special.softmax(t_rows, 1)[:, :-1].max(1)
    t_box_rows = np.concatenate([t_boxes[i, cols] for i, (_, cols) in enumerate(pairs)])
    scale = np.concatenate([np.tile([w, h, w, h], (len(rows), 1))
                            for (h, w), (rows, _) in zip(shapes, pairs)]).astype(np.float64)
    l1 = giou = 0.0
    for layer in distilled:
        s_box_rows = np.concatenate([s_boxes[layer, i, rows]
                                     for i, (rows, _) in enumerate(pairs)])
        l1 += (confidence * np.abs(s_box_rows - t_box_rows).sum(1)).sum() / confidence.sum()
        gious = np.diag(giou_matrix(cxcywh_to_xyxy(s_box_rows) * scale,
                                    cxcywh_to_xyxy(t_box_rows) * scale))
        giou += (confidence * (1 - gious)).sum() / confidence.sum()
    rel_close(losses['loss_dist_bbox'].item(), 5.0 * l1)
    rel_close(losses['loss_dist_iou'].item(), 2.0 * giou)
