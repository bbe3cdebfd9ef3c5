# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Every paper config runs what the official DIST code ran: its distillation-relevant
settings are pinned here, each to the official file it comes from.

The table below is written from the official repositories (not from our configs):
- classification: github.com/hunto/image_classification_sota
  (configs/strategies/distill/resnet_dist.yaml, resnet_kdt4.yaml; lib/utils/optim.py;
  lib/models/losses/kd_loss.py);
- detection: github.com/hunto/MasKD, folder mmrazor/ (configs/distill/dist/*.py;
  mmrazor/models/losses/dist_kd.py; configs/_base_/schedules/mmdet/schedule_2x.py and
  datasets/mmdet/coco_detection.py);
- segmentation: github.com/hunto/DIST_KD, folder segmentation/ (train_kd.py,
  train_scripts/train_kd/*.sh, dataset/datasets.py).
Where our config cannot be the official setting (the official teacher weights are not
published in an OpenMMLab format), the entry says so and docs/reproduction.md says what
it changes.
"""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from mmdist.registry import MODELS
from mmdist.testing import shipped_config_dir

CLS, DET, SEG = (shipped_config_dir(name) for name in ('dist_cls', 'dist_det', 'dist_seg'))

IMAGENET_DIST = 'image_classification_sota configs/strategies/distill/resnet_dist.yaml'
IMAGENET_KD = 'image_classification_sota configs/strategies/distill/resnet_kdt4.yaml'
IMAGENET_OPTIM = 'image_classification_sota lib/utils/optim.py'
RETINA = 'MasKD mmrazor/configs/distill/dist/dist_retinanet_x101-retinanet-r50_coco.py'
RETINA_MIMIC = 'MasKD mmrazor/configs/distill/dist/dist+mimic_retinanet_x101-retinanet-r50_coco.py'
CASCADE = 'MasKD mmrazor/configs/distill/dist/dist_cascade_mask_rcnn_x101-fpn_x50_coco.py'
CASCADE_MIMIC = 'MasKD mmrazor/configs/distill/dist/dist+mimic_cascade_mask_rcnn_x101-fpn_x50_coco.py'
CITYSCAPES = 'DIST_KD segmentation/train_kd.py'

# ----------------------------------------------------------------------- ImageNet
#: SGD of resnet_dist.yaml / resnet_kdt4.yaml (lr 0.1, momentum 0.9, weight decay 1e-4)
#: as lib/utils/optim.py builds it (nesterov, no decay on biases and 1-D parameters).
IMAGENET_SGD = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True,
                    norm_decay_mult=0.0, bias_decay_mult=0.0)
#: torchvision weights in the official code; mmpretrain's checkpoints of the same
#: architectures here (the URLs are pinned against mmpretrain's metafile in
#: tests/test_tools/test_classification_e2e.py).
TORCHVISION_TEACHER = 'torchvision weights officially; mmpretrain checkpoint here'
MMPRETRAIN_RESNET = 'https://download.openmmlab.com/mmclassification/v0/resnet/'
RESNET_CKPT = {
    'resnet34': MMPRETRAIN_RESNET + 'resnet34_8xb32_in1k_20210831-f257d4e6.pth',
    'resnet50': MMPRETRAIN_RESNET + 'resnet50_8xb32_in1k_20210831-ea4938fc.pth',
    'resnet101': MMPRETRAIN_RESNET + 'resnet101_8xb32_in1k_20210831-539c63f8.pth',
    'resnet152': MMPRETRAIN_RESNET + 'resnet152_8xb32_in1k_20210901-4d7582fa.pth',
}
RESNET_PAIRS = [('resnet34', 'resnet18'), ('resnet50', 'resnet18'), ('resnet101', 'resnet18'),
                ('resnet152', 'resnet18'), ('resnet50', 'resnet34'), ('resnet101', 'resnet34'),
                ('resnet152', 'resnet34')]


def _imagenet(teacher: str, student: str, kd: bool) -> dict:
    return dict(
        sources=[IMAGENET_KD if kd else IMAGENET_DIST, IMAGENET_OPTIM],
        loss=(dict(type='mmdist.KDLoss', tau=4.0, loss_weight=1.0) if kd else dict(
            type='mmdist.DISTLoss', tau=1.0, inter_loss_weight=1.0, intra_loss_weight=1.0,
            loss_weight=2.0)),
        student_loss_weight=0.9 if kd else 1.0,  # ori_loss_weight
        student=f'mmpretrain::resnet/{student}_8xb32_in1k.py',
        teacher=(f'mmpretrain::resnet/{teacher}_8xb32_in1k.py', RESNET_CKPT[teacher],
                 TORCHVISION_TEACHER),
        schedule=('epochs', 100), gpus=8, batch=32, optimizer=IMAGENET_SGD)


PAPER_CONFIGS = {}
for _teacher, _student in RESNET_PAIRS:
    for _kd in (False, True):
        PAPER_CONFIGS[f'dist_cls/{"kd" if _kd else "dist"}_{_teacher}_{_student}_8xb32_in1k.py'] = \
            _imagenet(_teacher, _student, _kd)
PAPER_CONFIGS['dist_cls/dist_swin-large-in21k-pre_swin-tiny_8xb128_in1k.py'] = dict(
    sources=['DIST_KD README.md (official Swin-Transformer code, 8 GPUs x 128)',
             IMAGENET_DIST + ' (the DIST weight; the Swin code is not published)'],
    loss=dict(type='mmdist.DISTLoss', tau=1.0, inter_loss_weight=1.0, intra_loss_weight=1.0,
              loss_weight=2.0),
    student_loss_weight=1.0,
    student='mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
    teacher=('mmpretrain::swin_transformer/swin-large_16xb64_in1k.py',
             'https://download.openmmlab.com/mmclassification/v0/swin-transformer/convert/'
             'swin_large_patch4_window7_224_22kto1k-5f0996db.pth',
             'the official Swin-L 22k->1k weights, converted by mmpretrain'),
    schedule=('epochs', 300), gpus=8, batch=128,
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))

# ----------------------------------------------------------------------- COCO
_MMDET = 'https://download.openmmlab.com/mmdetection/v2.0/'
#: mmdet 2.x schedule_2x.py (24 epochs, SGD momentum 0.9, weight decay 1e-4), 2 images x
#: 8 GPUs (coco_detection.py); lr 0.01 set by the RetinaNet configs, 0.02 kept for R-CNN.
_RETINA = dict(
    loss=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, inter_loss_weight=1.0,
              intra_loss_weight=1.0, loss_weight=1.0),
    layout=dict(dense_rows='location', mask_padding=False),  # dist_kd.py on retina_cls
    student='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    teacher=('mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py',
             _MMDET + 'retinanet/retinanet_x101_64x4d_fpn_1x_coco/'
             'retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth', 'official'),
    schedule=('epochs', 24), gpus=8, batch=2,
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
_CASCADE = dict(
    loss=dict(type='mmdist.DISTLoss', activation='softmax', tau=1.0, inter_loss_weight=1.0,
              intra_loss_weight=1.0, loss_weight=1.0),
    student='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
    teacher=('mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py',
             _MMDET + 'cascade_rcnn/cascade_mask_rcnn_x101_64x4d_fpn_20e_coco/'
             'cascade_mask_rcnn_x101_64x4d_fpn_20e_coco_20200512_161033-bdb5126a.pth',
             'official'),
    schedule=('epochs', 24), gpus=8, batch=2,
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
PAPER_CONFIGS.update({
    'dist_det/dist_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py':
        dict(_RETINA, sources=[RETINA], mimic=None),
    'dist_det/dist-mimic_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py':
        dict(_RETINA, sources=[RETINA_MIMIC], mimic=1.0),
    'dist_det/dist_cascade-mask-rcnn-x101-64x4d_faster-rcnn-r50_fpn_2x_coco.py':
        dict(_CASCADE, sources=[CASCADE], mimic=None),
    'dist_det/dist-mimic_cascade-mask-rcnn-x101-64x4d_faster-rcnn-r50_fpn_2x_coco.py':
        dict(_CASCADE, sources=[CASCADE_MIMIC], mimic=1.0),
})

# ----------------------------------------------------------------------- Cityscapes
_SEG_TEACHER = (
    'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
    'deeplabv3_r101-d8_512x1024_80k_cityscapes/'
    'deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth',
    'the official DeepLabV3-R101 (78.07) is not published for mmseg; mmseg\'s (80.20) here')
for _student in ('deeplabv3', 'pspnet'):
    PAPER_CONFIGS[f'dist_seg/dist_deeplabv3-r101-d8_{_student}-r18-d8_8xb2-40k_cityscapes-'
                  '512x1024.py'] = dict(
        sources=[CITYSCAPES, f'DIST_KD segmentation/train_scripts/train_kd/{_student}_res18.sh',
                 'DIST_KD segmentation/dataset/datasets.py'],
        # DIST() (beta = gamma = 1, no temperature), lambda_kd 1; 0.4 on the aux logits.
        loss=dict(type='mmdist.DISTLoss', tau=1.0, inter_loss_weight=1.0,
                  intra_loss_weight=1.0, loss_weight=1.0),
        aux_loss_weight=0.4,
        student=f'mmseg::{_student}/{_student}_r18-d8_4xb2-80k_cityscapes-512x1024.py',
        teacher=_SEG_TEACHER,
        schedule=('iters', 40000), gpus=8, batch=2,
        optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=5e-4),
        poly=dict(eta_min=1e-4, power=0.9), val_interval=400, save_best='mIoU',
        layout=dict(mask_ignored=False))  # losses/dist_kd.py: every pixel of the crop

#: Shipped configs that are not paper settings, and why.
NOT_PAPER = {
    'dist_cls/baseline_resnet18_8xb32_in1k.py': 'the same-schedule student baseline',
    'dist_cls/baseline_resnet34_8xb32_in1k.py': 'the same-schedule student baseline',
    'dist_cls/dist_resnet50_mobilenet-v2_8xb32_in1k.py': 'no paper number for this pair',
    'dist_det/dist-mixup_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py': 'MixUp extension',
    'dist_det/dist_fcos-x101-64x4d_fcos-r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py':
        'no paper number',
    'dist_det/dist_atss-r101_atss-r50_fpn_1x_coco.py': 'no paper number',
    'dist_det/dist_gfl-r101_gfl-r50_fpn_ms-2x_coco.py': 'no paper number',
    'dist_det/dist_rtmdet-l_rtmdet-s_8xb32-300e_coco.py': 'no paper number (RTMDet)',
    'dist_det/dist-crosshead_gfl-r101_retinanet-r50_fpn_2x_coco.py':
        'cross-head extension, no paper number',
    'dist_det/dist-crosshead_rtmdet-l_atss-r50_fpn_1x_coco.py':
        'cross-head extension, no paper number',
    'dist_det/dist_dino-5scale-swin-l_dino-4scale-r50_8xb2-12e_coco.py':
        'query-based (DINO), not in the paper: no paper number',
    'dist_seg/dist_deeplabv3-r101-d8_deeplabv3-r18-d8_4xb2-80k_cityscapes-512x1024.py':
        'mmseg protocol',
    'dist_seg/dist_deeplabv3-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py':
        'mmseg protocol',
    'dist_seg/dist-cutmix_deeplabv3-r101-d8_pspnet-r18-d8_8xb2-40k_cityscapes-512x1024.py':
        'CutMix extension',
    'dist_seg/dist_segformer-mit-b5_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py':
        'transformer teacher, no paper number',
    'dist_seg/dist_segformer-mit-b5_segformer-mit-b0_8xb1-160k_cityscapes-1024x1024.py':
        'transformer pair, no paper number',
    'dist_seg/dist_mask2former-swin-b_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py':
        'Mask2Former teacher, no paper number',
}


def _shipped():
    return sorted(osp.relpath(path, osp.dirname(CLS))
                  for folder in (CLS, DET, SEG) for path in glob.glob(osp.join(folder, '*.py')))


def test_every_shipped_config_is_pinned_or_declared_not_a_paper_config():
    assert set(PAPER_CONFIGS).isdisjoint(NOT_PAPER)
    assert _shipped() == sorted([*PAPER_CONFIGS, *NOT_PAPER])


def _schedule(cfg: Config):
    if cfg.train_cfg.get('by_epoch', cfg.train_cfg.get('type') == 'EpochBasedTrainLoop'):
        return 'epochs', cfg.train_cfg.max_epochs
    return 'iters', cfg.train_cfg.max_iters


def _settings(loss_cfg, expected: dict) -> dict:
    """The registered type and the ``expected`` keys of the loss built from ``loss_cfg``."""
    loss = MODELS.build(loss_cfg)
    assert f'mmdist.{type(loss).__name__}' == loss_cfg.type
    return dict({key: getattr(loss, key) for key in expected if key != 'type'},
                type=loss_cfg.type)


def _stock(path: str) -> Config:
    """A stock OpenMMLab config (``scope::path``), as the paper config's base resolves it."""
    return Config.fromstring(f'_base_ = [{path!r}]\n', '.py')


@pytest.mark.parametrize('name', sorted(PAPER_CONFIGS))
def test_paper_config_settings_are_the_official_ones(name):
    expected = PAPER_CONFIGS[name]
    cfg = Config.fromfile(osp.join(osp.dirname(CLS), name))
    model = cfg.model
    assert expected['sources'], name  # every entry cites where its values come from

    # The distillation loss(es), as built (the values the loss module uses).
    loss = model.loss_cls if 'loss_cls' in model else model.loss_decode
    assert _settings(loss, expected['loss']) == expected['loss']
    if 'aux_loss_weight' in expected:
        aux = dict(expected['loss'], loss_weight=expected['aux_loss_weight'])
        assert _settings(model.loss_aux, aux) == aux
    if 'student_loss_weight' in expected:  # the student's own cross-entropy
        assert model.student.head.loss.get('loss_weight', 1.0) == expected['student_loss_weight']
    if model.type == 'mmdist.SegmentationDistiller':
        assert model.get('mask_ignored', True) == expected['layout']['mask_ignored']
    if model.type == 'mmdist.DetectionDistiller':
        layout = dict(dense_rows=model.get('dense_rows', 'anchor'),
                      mask_padding=model.get('mask_padding', True))
        assert layout == expected.get('layout', dict(dense_rows='anchor', mask_padding=True))
        mimic = model.get('mimic')
        assert (None if mimic is None else mimic.loss_weight) == expected['mimic']

    # Student (the stock config, unchanged but for what the entry names) and teacher.
    stock = _stock(expected['student'])
    student = model.student.to_dict()
    if expected.get('student_loss_weight', 1.0) != 1.0:  # the one change: its CE weight
        student['head']['loss']['loss_weight'] = stock.model.head.loss.loss_weight
    assert student == stock.model.to_dict()
    teacher_cfg, teacher_ckpt, _why = expected['teacher']
    assert (model.teacher_cfg, model.teacher_ckpt) == (teacher_cfg, teacher_ckpt)

    # Schedule, batch and optimiser.
    assert _schedule(cfg) == expected['schedule']
    assert cfg.train_dataloader.batch_size == expected['batch']
    gpus_x_batch = re.search(r'_(\d+)xb(\d+)_', name)  # mmdet's names do not say it
    if gpus_x_batch:
        assert gpus_x_batch.groups() == (str(expected['gpus']), str(expected['batch']))
    optimizer = dict(expected['optimizer'])
    paramwise = {key: optimizer.pop(key) for key in ('norm_decay_mult', 'bias_decay_mult')
                 if key in optimizer}
    assert {key: cfg.optim_wrapper.optimizer.get(key) for key in optimizer} == optimizer
    if optimizer['type'] == 'SGD':
        assert cfg.optim_wrapper.optimizer.get('nesterov', False) == optimizer.get(
            'nesterov', False)
    for key, value in paramwise.items():
        assert cfg.optim_wrapper.paramwise_cfg[key] == value
    assert cfg.auto_scale_lr.base_batch_size == expected['gpus'] * expected['batch']

    if 'poly' in expected:  # Cityscapes: the official protocol
        poly, = cfg.param_scheduler
        assert (poly.type, poly.eta_min, poly.power, poly.end) == (
            'PolyLR', expected['poly']['eta_min'], expected['poly']['power'],
            expected['schedule'][1])
        assert cfg.train_cfg.val_interval == expected['val_interval']
        assert cfg.default_hooks.checkpoint.save_best == expected['save_best']
        steps = [step['type'] for step in cfg.train_dataloader.dataset.pipeline]
        assert 'PhotoMetricDistortion' not in steps
        crop, = [s for s in cfg.train_dataloader.dataset.pipeline if s['type'] == 'RandomCrop']
        assert crop.crop_size == (512, 1024) and crop.cat_max_ratio == 1.0
        resize, = [s for s in cfg.train_dataloader.dataset.pipeline
                   if s['type'] == 'RandomChoiceResize']
        # 0.5 + randint(0, 15) / 10 times the 2048 x 1024 images.
        factors = [0.5 + i / 10 for i in range(16)]
        assert [tuple(s) for s in resize.scales] == [
            (round(2048 * f), round(1024 * f)) for f in factors]
