# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Run-lifecycle checks shared by the distillers: unknown names, AMP / bf16 autocast,
the random-teacher opt-in, checkpoints that do not fit, the order of build-time checks."""
import os

import numpy as np
import pytest
import torch
from demo.paths import load_tool
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.runner.amp import autocast

from mmdist.models.distillers import SegmentationDistiller
from mmdist.models.utils.teacher import RANDOM_TEACHER
from mmdist.registry import MODELS
from mmdist.testing._detection import write_retinanet_configs
from mmdist.testing._segmentation import write_segmentation_configs
from mmdist.utils import CheckpointError


@pytest.fixture(scope='module')
def seg(tmp_path_factory, cityscapes_root):
    return write_segmentation_configs(str(tmp_path_factory.mktemp('life')), cityscapes_root,
                                      'deeplabv3')


def build(cfg):
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model)


def test_unknown_module_names_fail_at_build_time(seg):
    cfg = Config.fromfile(seg['config'])
    cfg.model.student.decode_head.type = 'ASPPHeadTypo'
    with pytest.raises(KeyError, match='model.student: ASPPHeadTypo is not in the mmseg::model'):
        build(cfg)
    cfg = Config.fromfile(seg['config'])
    cfg.model.loss_decode.type = 'mmdist.DISTLos'
    with pytest.raises(KeyError, match='model.loss_decode: mmdist.DISTLos is not in the'):
        build(cfg)


def test_bf16_autocast_on_cpu(seg):
    """The AMP path on CPU: networks in bf16, distillation losses in float32, and close
    to the float32 run on the same batch (same dropout masks).

    Tolerances: bf16 keeps 8 significant bits (relative spacing 2^-8 = 3.9e-3), and the
    logits carry the rounding of every layer before them. Measured on five batches (seeds
    and image pairs): the distillation losses 1.6e-4 to 2.8e-3 (relative) from float32,
    their gradient on the decode classifier 1.5e-2 to 7.3e-2 (relative L2 norm).
    Allowed: 1e-2 and 0.15.
    """
    cfg = Config.fromfile(seg['config'])
    model = build(cfg)
    model.train()
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    np.random.seed(0)  # the pipeline's random flips
    data = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), True)
    seen = {}

    def record_dtype(module, args, output):  # returns None: output unchanged
        seen.setdefault('teacher_dtype', output.dtype)

    dist_keys = ('loss_dist_decode', 'loss_dist_aux')
    classifier = model.student.decode_head.conv_seg.weight

    def run(bf16: bool):
        """The distillation losses and their gradient on the student's decode classifier;
        then the whole loss goes backward, as in a training step."""
        torch.manual_seed(0)  # the same dropout masks in both runs
        model.zero_grad()
        with autocast(device_type='cpu', dtype=torch.bfloat16, enabled=bf16):
            losses = model(**data, mode='loss')
        (grad, ) = torch.autograd.grad(sum(losses[k] for k in dist_keys), classifier,
                                       retain_graph=True)
        sum(v for k, v in losses.items() if k.startswith('loss') or '.loss' in k).backward()
        assert torch.isfinite(classifier.grad).all()
        return {k: losses[k].detach() for k in dist_keys}, grad

    fp32_losses, fp32_grad = run(bf16=False)
    hook = model.teacher.decode_head.conv_seg.register_forward_hook(record_dtype)
    bf16_losses, bf16_grad = run(bf16=True)
    hook.remove()
    assert seen['teacher_dtype'] == torch.bfloat16
    for key in dist_keys:
        assert bf16_losses[key].dtype == torch.float32
        assert bf16_losses[key].item() == pytest.approx(fp32_losses[key].item(), rel=1e-2), key
    assert ((bf16_grad - fp32_grad).norm() / fp32_grad.norm()).item() < 0.15


def test_amp_flag_selects_amp_optim_wrapper(seg, tmp_path):
    runner = load_tool('train').build_runner([
        seg['config'], '--amp', '--work-dir', str(tmp_path), '--cfg-options',
        'visualizer.name=amp_flag'
    ])
    assert runner.cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert runner.cfg.optim_wrapper.loss_scale == 'dynamic'


def test_random_teacher_needs_an_explicit_opt_in(seg):
    cfg = Config.fromfile(seg['config'])
    cfg.model.teacher_ckpt = None
    with pytest.raises(ValueError, match="^teacher_ckpt: None would distil from a randomly "
                       r"initialised teacher.*teacher_ckpt='random-init'"):
        build(cfg)
    cfg.model.teacher_ckpt = RANDOM_TEACHER
    assert isinstance(build(cfg), SegmentationDistiller)


def test_plain_student_checkpoint_loads_into_the_student(seg, tmp_path):
    """``load_from`` / the test checkpoint may be a plain (e.g. exported) student."""
    cfg = Config.fromfile(seg['config'])
    torch.manual_seed(1)
    source = build(cfg).student.state_dict()
    torch.manual_seed(2)
    target = build(cfg)
    assert not all(torch.equal(target.student.state_dict()[k], v) for k, v in source.items())
    plain = str(tmp_path / 'plain_student.pth')
    torch.save({'meta': {}, 'state_dict': source}, plain)
    load_checkpoint(target, plain, map_location='cpu')  # strict=False, as mmengine's Runner
    loaded = target.student.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.items())


def test_checkpoint_that_does_not_fit_the_student_is_an_error(seg, tmp_path):
    model = build(Config.fromfile(seg['config']))
    # The teacher's checkpoint (another width): keys map onto the student, shapes do not.
    with pytest.raises(CheckpointError, match=r'does not fit its student EncoderDecoder: \d+ of '
                       r"\d+ tensors fit; .*other shape 'student\.backbone\."):
        load_checkpoint(model, seg['teacher_ckpt'], map_location='cpu')
    unrelated = str(tmp_path / 'unrelated.pth')
    torch.save({'state_dict': {'student.head.fc.weight': torch.ones(2, 2)}}, unrelated)
    with pytest.raises(CheckpointError, match=r"0 of \d+ tensors fit; missing "
                       r"'student\.backbone\..*not in the model 'student\.head\.fc\.weight'"):
        load_checkpoint(model, unrelated, map_location='cpu')


@pytest.mark.parametrize('fraction', [0.3, 0.6])
def test_the_student_fit_rule_at_its_boundary(seg, tmp_path, fraction):
    """``MIN_FIT`` (50 %): a checkpoint holding 30 % of the student's tensors is refused
    naming the rule; one holding 60 % loads them (the others keep their weights)."""
    torch.manual_seed(1)
    source = {k: v for k, v in build(Config.fromfile(seg['config'])).student.state_dict().items()
              if not k.endswith('num_batches_tracked')}
    kept = sorted(source)[:round(fraction * len(source))]
    partial = str(tmp_path / 'partial.pth')
    torch.save({'state_dict': {k: source[k] for k in kept}}, partial)
    torch.manual_seed(2)
    model = build(Config.fromfile(seg['config']))
    before = {k: v.clone() for k, v in model.student.state_dict().items()}
    if fraction < 0.5:
        with pytest.raises(CheckpointError, match=rf'^the checkpoint loaded into Segmentation'
                           rf'Distiller .*: {len(kept)} of {len(source)} tensors fit; missing .*'
                           r'\(at least 50% must\)'):
            load_checkpoint(model, partial, map_location='cpu')
        return
    load_checkpoint(model, partial, map_location='cpu')
    loaded = model.student.state_dict()
    assert all(torch.equal(loaded[k], source[k]) for k in kept)
    assert all(torch.equal(loaded[k], before[k]) for k in source if k not in kept)
    assert not all(torch.equal(before[k], source[k]) for k in kept)


class _TouchMarker:
    """A pickle that runs ``touch MARKER`` when unpickled with full pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_poisoned_pretrained_weights_are_refused_for_student_and_teacher(seg, tmp_path,
                                                                          monkeypatch):
    """The issue's reproduction: a pickle that runs code, planted in torch hub's cache
    where ``torchvision://resnet18`` is read from (the stock students' init_cfg)."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv('MMDIST_ALLOW_PICKLE_CHECKPOINTS', raising=False)
    cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'
    cached.parent.mkdir(parents=True)
    marker = tmp_path / 'MARKER'
    torch.save({'state_dict': {}, 'x': _TouchMarker(marker)}, str(cached))
    cfg = Config.fromfile(seg['config'])
    cfg.model.student.backbone.init_cfg = dict(type='Pretrained',
                                               checkpoint='torchvision://resnet18')
    model = build(cfg)
    with pytest.raises(CheckpointError, match="^checkpoint 'torchvision://resnet18' .*"
                       'resnet18-f37072fd.pth.*outside the weights_only allow-list'):
        model.init_weights()  # the runner does this before training
    cfg.model.teacher_ckpt = 'torchvision://resnet18'
    with pytest.raises(CheckpointError, match="^teacher_ckpt: checkpoint 'torchvision://"
                       "resnet18' .*outside the weights_only allow-list"):
        build(cfg)
    assert not marker.exists()


def test_detr_student_gets_the_unsupported_teacher_error_first(tmp_path, coco_root):
    """A DETR student with a RetinaNet teacher: the pair error, not the padding check it
    would fail next (DETR pads to 1, the teacher to 32)."""
    retina = write_retinanet_configs(str(tmp_path), coco_root)
    detr = Config.fromstring("_base_ = ['mmdet::detr/detr_r50_8xb2-150e_coco.py']\n",
                             '.py').model
    detr.backbone.update(depth=18, init_cfg=None)
    detr.neck.in_channels = [512]
    assert detr.data_preprocessor.pad_size_divisor == 1
    cfg = Config.fromfile(retina['config'])
    cfg.model.student = detr
    with DefaultScope.overwrite_default_scope('mmdet'):
        with pytest.raises(TypeError, match='^teacher_cfg model: query distillation supports '
                           'the detectors DETR, DeformableDETR, DINO'):
            MODELS.build(cfg.model)
