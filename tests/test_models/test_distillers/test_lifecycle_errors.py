# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Run-lifecycle checks shared by the distillers: unknown names, AMP / bf16 autocast."""
import numpy as np
import pytest
import torch
from conftest import load_tool
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner.amp import autocast
from segmentation_helpers import write_segmentation_configs

from mmdist.registry import MODELS


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
