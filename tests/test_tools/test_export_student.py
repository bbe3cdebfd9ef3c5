# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Exported students load with plain mmdet / mmseg APIs and predict like the distiller."""
import glob
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
from demo.paths import ROOT as REPO, load_tool
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmdist.datasets import SHAPE_CLASSES
from mmdist.registry import MODELS
from mmdist.testing._detection import write_config, write_retinanet_configs
from mmdist.testing._e2e import periodic_checkpoint
from mmdist.testing._segmentation import write_segmentation_configs


def train(config, work_dir, name, *options):
    runner = load_tool('train').build_runner(
        [config, '--work-dir', work_dir, '--cfg-options', f'visualizer.name={name}', *options])
    runner.train()
    return periodic_checkpoint(work_dir)


def export(config, ckpt, out_dir):
    script = osp.join(REPO, 'tools', 'model_converters', 'export_student.py')
    result = subprocess.run([sys.executable, script, config, ckpt, out_dir, '--name', 'student'],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'left out: ' in result.stdout
    return osp.join(out_dir, 'student.pth'), osp.join(out_dir, 'student.py'), result.stdout


def distiller_from(config, ckpt, scope):
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    load_checkpoint(model, ckpt, map_location='cpu', strict=True)
    return model.eval()


def check_plain_files(student_ckpt, student_cfg):
    ckpt = torch.load(student_ckpt, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    assert not any(k.startswith(('teacher', 'student', 'mimic')) for k in ckpt['state_dict'])
    with open(student_cfg, encoding='utf-8') as f:
        assert 'mmdist' not in f.read()


def test_export_retinanet_student(tmp_path, coco_root):
    paths = write_retinanet_configs(str(tmp_path), coco_root)
    # With mimic connectors (to be left out) and every detection kept (tiny model).
    config = write_config(str(tmp_path / 'dist_mimic.py'),
                          f"_base_ = [{paths['config']!r}]\n"
                          'model = dict(mimic=dict(loss_weight=1.0), '
                          'student=dict(test_cfg=dict(score_thr=0.0)))\n')
    ckpt = train(config, str(tmp_path / 'work'), 'export_det')
    student_ckpt, student_cfg, stdout = export(config, ckpt, str(tmp_path / 'out'))
    assert 'mimic.* (10)' in stdout  # 5 connectors x (weight, bias)
    check_plain_files(student_ckpt, student_cfg)

    # Plain mmdet, in a fresh interpreter that never imports mmdist.
    image = sorted(glob.glob(osp.join(coco_root, 'images', 'val', '*.jpg')))[0]
    code = ('import sys, torch; from mmdet.apis import init_detector, inference_detector\n'
            'm = init_detector(sys.argv[1], sys.argv[2], device="cpu")\n'
            'r = inference_detector(m, sys.argv[3]).pred_instances\n'
            'torch.save({"b": r.bboxes, "s": r.scores, "l": r.labels,\n'
            '            "classes": list(m.dataset_meta["classes"])}, sys.argv[4])\n'
            'assert "mmdist" not in sys.modules\n')
    out = str(tmp_path / 'plain.pt')
    result = subprocess.run([sys.executable, '-c', code, student_cfg, student_ckpt, image, out],
                            capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    plain = torch.load(out)
    # init_detector takes the class names from the exported meta (without them: COCO's).
    assert tuple(plain['classes']) == SHAPE_CLASSES

    from mmdet.apis import inference_detector
    distiller = distiller_from(config, ckpt, 'mmdet')
    distiller.cfg = Config.fromfile(student_cfg)  # inference_detector reads the test pipeline
    ours = inference_detector(distiller, image).pred_instances
    assert len(ours.bboxes) > 0
    assert torch.equal(ours.bboxes, plain['b']) and torch.equal(ours.scores, plain['s'])
    assert torch.equal(ours.labels, plain['l'])


def test_export_segmentation_student(tmp_path, cityscapes_root):
    paths = write_segmentation_configs(str(tmp_path), cityscapes_root, 'deeplabv3')
    config = paths['config']
    ckpt = train(config, str(tmp_path / 'work'), 'export_seg')
    student_ckpt, student_cfg, _ = export(config, ckpt, str(tmp_path / 'out'))
    check_plain_files(student_ckpt, student_cfg)

    from mmseg.apis import inference_model, init_model
    image = sorted(glob.glob(osp.join(cityscapes_root, 'leftImg8bit', 'val', '*', '*.png')))[0]
    plain = inference_model(init_model(student_cfg, student_ckpt, device='cpu'), image)
    distiller = distiller_from(config, ckpt, 'mmseg')
    distiller.cfg = Config.fromfile(student_cfg)
    ours = inference_model(distiller, image)
    assert torch.equal(ours.seg_logits.data, plain.seg_logits.data)
    assert np.array_equal(ours.pred_sem_seg.data.numpy(), plain.pred_sem_seg.data.numpy())
