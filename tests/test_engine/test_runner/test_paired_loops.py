# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Paired teacher-student test loop end to end through tools/test.py (tiny CPU models)."""
import glob
import math
import os.path as osp
from types import SimpleNamespace

import cv2
import pytest
import torch
from demo.paths import load_tool
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope

from mmdist.datasets import make_coco_shapes
from mmdist.engine.runner.paired_loops import PairedEvaluation
from mmdist.evaluation.input_perturbation import PixelSpace, discrepancy, pgd_attack
from mmdist.models.utils.teacher import build_teacher
from mmdist.registry import MODELS
from mmdist.testing._detection import data_overrides as det_data
from mmdist.testing._detection import write_config, write_retinanet_configs
from mmdist.testing._segmentation import data_overrides as seg_data
from mmdist.testing._segmentation import write_segmentation_configs

SEG_EVALUATOR = ("test_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']), "
                 "dict(type='mmdist.SegFaithfulnessMetric')]\n")
PAIRED = ['test_cfg.type=mmdist.PairedTestLoop']


def sharpen(state: dict) -> dict:
    """Untrained segmentors predict one class everywhere; larger classifier weights (and
    no bias) make their label maps vary from pixel to pixel."""
    for key, value in state.items():
        if 'conv_seg.weight' in key:
            state[key] = value * 50
        elif 'conv_seg.bias' in key:
            state[key] = torch.zeros_like(value)
    return state


def save_distiller_checkpoint(config: str, path: str, scope: str, student_state=None) -> str:
    """The distiller's (student-only) state dict, optionally with given student weights."""
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    state = sharpen(model.state_dict())
    if student_state is not None:
        state = {f'student.{k}': v for k, v in student_state.items()}
    torch.save(dict(meta=dict(note='tiny test distiller'), state_dict=state), path)
    return path


def run_test(config: str, ckpt: str, work_dir: str, options=()):
    """tools/test.py on ``config``; returns (runner, metrics)."""
    runner = load_tool('test').build_runner(
        [config, ckpt, '--work-dir', work_dir, '--cfg-options',
         f'visualizer.name={osp.basename(work_dir)}', *options])
    return runner, runner.test()


def identical_config(tmp, base: str, teacher_cfg: str, teacher_ckpt: str, extra: str = ''):
    """The distillation config with the teacher's architecture and weights as student
    (and the teacher's BatchNorms not folded, so that both compute bit for bit alike)."""
    teacher_model = Config.fromfile(teacher_cfg).model.to_dict()
    config = write_config(osp.join(tmp, 'identical.py'),
                          f'_base_ = [{base!r}]\n'
                          f'model = dict(student=dict(_delete_=True, **{teacher_model!r}),\n'
                          '             teacher_fuse_conv_bn=False)\n'
                          + extra)
    ckpt = save_distiller_checkpoint(config, osp.join(tmp, 'identical.pth'), 'mmseg',
                                     torch.load(teacher_ckpt)['state_dict'])
    return config, ckpt


# ----------------------------------------------------------------------- segmentation
@pytest.fixture(scope='module')
def seg(tmp_path_factory, cityscapes_root):
    tmp = str(tmp_path_factory.mktemp('paired_seg'))
    paths = write_segmentation_configs(tmp, cityscapes_root, 'pspnet')
    teacher = torch.load(paths['teacher_ckpt'])
    teacher['state_dict'] = sharpen(teacher['state_dict'])
    paths['teacher_ckpt'] = osp.join(tmp, 'teacher_sharpened.pth')
    torch.save(teacher, paths['teacher_ckpt'])
    # The synthetic labels are mostly class 0: let the teacher predict it on about half of
    # the pixels, so that it is right somewhere (teacher-correct pixels are the units of
    # several metrics).
    model = build_teacher(paths['teacher_cfg'], paths['teacher_ckpt'])
    images = [torch.from_numpy(cv2.imread(p)).permute(2, 0, 1) for p in
              sorted(glob.glob(osp.join(cityscapes_root, 'leftImg8bit', 'val', '*', '*.png')))]
    with torch.no_grad():
        logits = model(model.data_preprocessor(dict(inputs=images), False)['inputs'],
                       mode='tensor')
    margin = (logits[:, 1:].max(1).values - logits[:, 0]).median()
    teacher['state_dict']['decode_head.conv_seg.bias'][0] += margin
    torch.save(teacher, paths['teacher_ckpt'])
    paths['root'] = cityscapes_root
    paths['tmp'] = tmp
    paths['eval_config'] = write_config(
        osp.join(tmp, 'dist_eval.py'), f"_base_ = [{paths['config']!r}]\n"
        f"model = dict(teacher_ckpt={paths['teacher_ckpt']!r})\n" + SEG_EVALUATOR)
    paths['ckpt'] = save_distiller_checkpoint(paths['eval_config'],
                                              osp.join(tmp, 'distiller.pth'), 'mmseg')
    return paths


def test_segmentation_paired_loop_matches_separate_runs(seg):
    tmp = seg['tmp']
    paired_runner, paired = run_test(seg['eval_config'], seg['ckpt'], osp.join(tmp, 'paired'),
                                     PAIRED)
    teacher_keys = {'agreement', 'agreement_teacher_correct', 'agreement_class_macro',
                    'agreement_mIoU', 'ece_teacher', 'ece_diff', 'cb_ece_teacher',
                    'oe_teacher', 'kl_teacher_student', 'teacher_conf_gap', 'rel_ece',
                    'rel_cw_ece', 'acc_teacher'}
    student_keys = {'acc_student', 'ece_student', 'cb_ece_student', 'oe_student'}
    assert {f'faith/{k}' for k in teacher_keys | student_keys} <= set(paired)
    for key in teacher_keys | student_keys:
        value = paired[f'faith/{key}']
        assert math.isfinite(value), key
    assert 0 <= paired['faith/agreement'] <= 1 and paired['faith/kl_teacher_student'] > 0

    # The validation loop (same images) gives the same numbers. (Without mIoU among its
    # metrics, so the shipped config's best-mIoU checkpointing is turned off.)
    paired_runner._val_loop = dict(type='mmdist.PairedValLoop')
    paired_runner._val_evaluator = [dict(type='mmdist.SegFaithfulnessMetric')]
    checkpointer, = [h for h in paired_runner.hooks if type(h).__name__ == 'CheckpointHook']
    checkpointer.save_best = None
    val = paired_runner.val()
    assert val.keys() == {k for k in paired if k.startswith('faith/')}
    for key, value in val.items():
        assert value == pytest.approx(paired[key], abs=1e-9, nan_ok=True), key

    # The plain loop with the same metric: calibration of the student only, same numbers,
    # and the stock metric (mmseg's pixel accuracy) unchanged by the paired loop.
    _, plain = run_test(seg['eval_config'], seg['ckpt'], osp.join(tmp, 'plain'))
    assert {k for k in plain if k.startswith('faith/')} == {f'faith/{k}' for k in student_keys}
    for key in student_keys:
        assert plain[f'faith/{key}'] == pytest.approx(paired[f'faith/{key}'], abs=1e-9)
    assert plain['aAcc'] == paired['aAcc'] and plain['mIoU'] == paired['mIoU']
    assert plain['faith/acc_student'] * 100 == pytest.approx(plain['aAcc'], abs=0.006)

    # The teacher evaluated on its own (its own config, normalisation and test_cfg).
    teacher_config = write_config(osp.join(tmp, 'teacher_eval.py'),
                                  f"_base_ = [{seg['teacher_cfg']!r}]\n" +
                                  seg_data(seg['root']) + SEG_EVALUATOR)
    runner, alone = run_test(teacher_config, seg['teacher_ckpt'], osp.join(tmp, 'teacher'))
    for key in ('acc', 'ece', 'cb_ece', 'oe'):
        assert alone[f'faith/{key}_student'] == pytest.approx(paired[f'faith/{key}_teacher'],
                                                              abs=1e-6), key

    # A plain model cannot run the paired loops; the error names the config key.
    with pytest.raises(TypeError, match=r"val_cfg.type='mmdist.PairedValLoop'.*ValLoop"):
        runner.build_val_loop(dict(type='mmdist.PairedValLoop'))
    with pytest.raises(TypeError, match=r"test_cfg.type='mmdist.PairedTestLoop'.*TestLoop"):
        runner.build_test_loop(dict(type='mmdist.PairedTestLoop'))


def test_segmentation_identical_teacher_with_perturbations(seg):
    config, ckpt = identical_config(
        seg['tmp'], seg['eval_config'], seg['teacher_cfg'], seg['teacher_ckpt'],
        "test_evaluator = [dict(type='mmdist.SegFaithfulnessMetric'), "
        "dict(type='mmdist.PerturbationDisagreement')]\n")
    options = PAIRED + ['test_cfg.perturbation.eps=8.0', 'test_cfg.perturbation.num_draws=1',
                        'test_cfg.perturbation.pgd.steps=1']
    runner, m = run_test(config, ckpt, osp.join(seg['tmp'], 'identical'), options)
    assert m['faith/agreement'] == 1.0 and m['faith/agreement_mIoU'] == 1.0
    assert m['faith/ece_diff'] == 0.0 and m['faith/teacher_conf_gap'] == 0.0
    assert m['faith/kl_teacher_student'] == pytest.approx(0.0, abs=1e-6)
    # Both networks saw the same perturbed images: identical networks never disagree.
    assert m['perturb/num_units'] > 0 and m['perturb/num_pgd_units'] > 0
    assert m['perturb/num_draws'] == 1 and m['perturb/eps'] == 8.0
    for key in ('clean_disagreement', 'noise_disagreement', 'noise_disagreement_any',
                'pgd_disagreement'):
        assert m[f'perturb/{key}'] == 0.0, key
    # PGD belongs to the test loop
    with pytest.raises(ValueError, match=r'val_cfg.perturbation.pgd'):
        runner.build_val_loop(dict(type='mmdist.PairedValLoop',
                                   perturbation=dict(eps=1.0, pgd=dict(steps=1))))


def test_pgd_ascends_the_teacher_student_divergence(seg):
    cfg = Config.fromfile(seg['eval_config'])
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model).eval()
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    data = model.data_preprocessor(pseudo_collate([dataset[0]]), False)
    inputs, samples = data['inputs'], data['data_samples']
    paired = PairedEvaluation(SimpleNamespace(model=model), 'test_cfg', 'mmdist.PairedTestLoop',
                              dict(eps=2.0, pgd=dict(steps=3)), allow_pgd=True)
    assert paired.perturbation['pgd'] == dict(steps=3, step_size=2.5 * 2.0 / 3, num_batches=1)
    space = PixelSpace(model.data_preprocessor, inputs, samples)
    start = (torch.rand(inputs.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 2.0
    with torch.no_grad():
        before = discrepancy(model, space.apply(start), samples, 'seg')
    delta = pgd_attack(model, space, start, samples, paired.perturbation['eps'],
                       paired.perturbation['pgd'], 'seg')
    with torch.no_grad():
        after = discrepancy(model, space.apply(delta), samples, 'seg')
    assert delta.abs().max() <= 2.0 and not delta.requires_grad
    assert after > before * 1.05, (float(before), float(after))


# ----------------------------------------------------------------------- detection
@pytest.fixture(scope='module')
def det(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp('paired_det'))
    # Disagreement units are ground-truth boxes the (untrained, tiny) teacher gets right:
    # 12 validation images (~30 boxes) make "at least one" certain, not luck of 2 images.
    coco_root = osp.join(tmp, 'coco')
    make_coco_shapes(coco_root, {'train': 4, 'val': 12}, image_size=(64, 64),
                     object_size=(10, 32))
    paths = write_retinanet_configs(tmp, coco_root)
    evaluator = (
        "test_evaluator = [dict(type='CocoMetric', metric='bbox', ann_file="
        f"{coco_root + '/annotations/instances_val.json'!r}), "
        "dict(type='mmdist.DetFaithfulnessMetric', pseudo_score_thr=0.0, "
        "calib_score_thr=0.0)]\n")
    # Untrained tiny detectors score about 0.01: keep every detection.
    paths['eval_config'] = write_config(
        osp.join(tmp, 'dist_eval.py'),
        f"_base_ = [{paths['config']!r}]\n"
        "model = dict(student=dict(test_cfg=dict(score_thr=0.0)), "
        "teacher_cfg_options={'model.test_cfg.score_thr': 0.0})\n" + evaluator)
    paths['teacher_eval_config'] = write_config(
        osp.join(tmp, 'teacher_eval.py'),
        f"_base_ = [{paths['teacher_cfg']!r}]\n" + det_data(coco_root) +
        "model = dict(test_cfg=dict(score_thr=0.0))\n" + evaluator)
    paths['ckpt'] = save_distiller_checkpoint(paths['eval_config'],
                                              osp.join(tmp, 'distiller.pth'), 'mmdet')
    paths['tmp'] = tmp
    return paths


def test_detection_paired_loop_matches_separate_runs(det):
    tmp = det['tmp']
    _, paired = run_test(det['eval_config'], det['ckpt'], osp.join(tmp, 'paired'), PAIRED)
    for key in ('fidelity_AP50', 'fidelity_recall', 'fidelity_precision',
                'matched_conf_gap', 'dece_student', 'dece_teacher', 'dece_diff'):
        assert math.isfinite(paired[f'faith/{key}']), key
    assert paired['faith/num_pseudo_boxes'] > 0 and paired['faith/pseudo_score_thr'] == 0.0
    # The models' test_cfg are logged next to the numbers.
    (log_file, ) = glob.glob(osp.join(tmp, 'paired', '*', '*.log'))
    with open(log_file, encoding='utf-8') as f:
        log = f.read()
    assert 'teacher detections with score >= 0.0' in log
    assert 'student test_cfg: {"max_per_img": 100' in log and 'teacher test_cfg: {' in log
    assert 0 <= paired['faith/fidelity_AP50'] <= 1

    _, plain = run_test(det['eval_config'], det['ckpt'], osp.join(tmp, 'plain'))
    assert {k for k in plain if k.startswith('faith/')} == {'faith/dece_student',
                                                           'faith/cb_dece_student',
                                                           'faith/calib_score_thr'}
    assert plain['faith/dece_student'] == pytest.approx(paired['faith/dece_student'], abs=1e-9)
    assert plain['coco/bbox_mAP'] == paired['coco/bbox_mAP']

    _, alone = run_test(det['teacher_eval_config'], det['teacher_ckpt'],
                        osp.join(tmp, 'teacher'))
    assert alone['faith/dece_student'] == pytest.approx(paired['faith/dece_teacher'], rel=1e-5)


def test_detection_identical_teacher_is_faithful(det):
    teacher_model = Config.fromfile(det['teacher_cfg']).model.to_dict()
    teacher_model['test_cfg']['score_thr'] = 0.0
    config = write_config(
        osp.join(det['tmp'], 'identical.py'), f"_base_ = [{det['eval_config']!r}]\n"
        f'model = dict(student=dict(_delete_=True, **{teacher_model!r}),\n'
        '             teacher_fuse_conv_bn=False)\n'  # bit for bit alike (see above)
        "test_evaluator = [dict(type='mmdist.DetFaithfulnessMetric', pseudo_score_thr=0.0, "
        "calib_score_thr=0.0), dict(type='mmdist.PerturbationDisagreement', score_thr=0.0)]\n")
    ckpt = save_distiller_checkpoint(config, osp.join(det['tmp'], 'identical.pth'), 'mmdet',
                                     torch.load(det['teacher_ckpt'])['state_dict'])
    options = PAIRED + ['test_cfg.perturbation.eps=8.0', 'test_cfg.perturbation.num_draws=0',
                        'test_cfg.perturbation.pgd.steps=1',  # noise: see the seg test
                        'test_cfg.perturbation.pgd.num_batches=6']  # all 12 images
    _, m = run_test(config, ckpt, osp.join(det['tmp'], 'identical'), options)
    assert m['faith/num_pseudo_boxes'] > 0
    assert m['faith/fidelity_AP50'] == 1.0 and m['faith/fidelity_recall'] == 1.0
    assert m['faith/matched_conf_gap'] == 0.0 and m['faith/dece_diff'] == 0.0
    # the PGD attack on a dense detector runs; identical networks never disagree
    assert m['perturb/num_units'] > 0 and m['perturb/num_pgd_units'] > 0
    assert 'perturb/noise_disagreement' not in m  # num_draws=0
    for key in ('clean_disagreement', 'pgd_disagreement'):
        assert m[f'perturb/{key}'] == 0.0, key


# ----------------------------------------------------------------------- pixel space
class Preprocessor:
    """Stand-in for an image preprocessor normalising per channel."""
    _enable_normalize = True
    mean = torch.tensor([100., 110., 120.])
    std = torch.tensor([50., 60., 70.])


class Sample:
    def __init__(self, h, w):
        self.img_shape = (h, w)


def test_pixel_space_noise_stays_in_the_ball_and_the_image():
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (2, 3, 6, 8), generator=g).float()
    raw[0, :, 0, 0] = 0.0  # at the ends of the pixel range
    raw[0, :, 0, 1] = 255.0
    mean, std = Preprocessor.mean.view(1, 3, 1, 1), Preprocessor.std.view(1, 3, 1, 1)
    inputs = (raw - mean) / std
    space = PixelSpace(Preprocessor(), inputs, [Sample(6, 8), Sample(4, 5)])
    delta = (torch.rand(inputs.shape, generator=g) * 2 - 1) * 4.0
    delta[0, :, 0, :2] = torch.tensor([-4.0, 4.0])
    out = space.apply(delta)
    new_raw = out * std + mean
    change = new_raw - raw
    assert change.abs().max() <= 4.0 + 1e-4
    assert new_raw.min() >= -1e-4 and new_raw.max() <= 255 + 1e-4
    assert torch.equal(out[1, :, 4:, :], inputs[1, :, 4:, :])  # padding untouched
    assert torch.equal(out[1, :, :, 5:], inputs[1, :, :, 5:])
    inside = torch.zeros_like(raw, dtype=torch.bool)
    inside[0], inside[1, :, :4, :5] = True, True
    clipped = (raw + delta < 0) | (raw + delta > 255)
    torch.testing.assert_close(change[inside & ~clipped], delta[inside & ~clipped],
                               atol=1e-4, rtol=0)
    assert change[0, :, 0, 0].abs().max() < 1e-4 and change[0, :, 0, 1].abs().max() < 1e-4
