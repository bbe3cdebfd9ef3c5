# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Checkpoints given to the tools: URLs for ``--resume``, ``load_from`` and tools/test.py,
plain student checkpoints on a distillation config, checkpoints that do not fit, resuming
with a changed config."""
import re

import pytest
import torch
from demo.paths import load_tool
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdist.apis import student_checkpoint
from mmdist.registry import MODELS
from mmdist.testing import tiny_retinanet
from mmdist.testing._http import FileServer
from mmdist.testing._segmentation import write_segmentation_configs
from mmdist.utils import CheckpointError, run_checkpoint


def tool_args(name, *options):
    return ['--cfg-options', f'visualizer.name={name}', f'experiment_name={name}', *options]


def assert_same(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope='module')
def run(tmp_path_factory, cityscapes_root):
    """A 2-iteration distillation run, its checkpoint and its exported student served over
    HTTP on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp('ckpt_inputs')
    paths = write_segmentation_configs(str(tmp), cityscapes_root, 'deeplabv3')
    runner = load_tool('train').build_runner([
        paths['config'], '--work-dir', str(tmp / 'run'),
        *tool_args('inputs_run', 'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2')
    ])
    runner.train()
    ckpt = str(tmp / 'run' / 'iter_2.pth')
    plain = str(tmp / 'student.pth')
    torch.save(student_checkpoint(torch.load(ckpt, weights_only=True))[0], plain)
    server = FileServer()
    for path, file in (('/run/iter_2.pth', ckpt), ('/zoo/student.pth', plain)):
        with open(file, 'rb') as f:
            server.files[path] = f.read()
    yield dict(paths, tmp=tmp, server=server, ckpt=ckpt, plain=plain,
               losses=list(runner.message_hub.get_scalar('train/loss').data[0]))
    server.close()


def test_resume_from_a_url(run):
    runner = load_tool('train').build_runner([
        run['config'], '--work-dir', str(run['tmp'] / 'resumed'), '--resume',
        run['server'].url('/run/iter_2.pth'), *tool_args('inputs_resumed',
                                                         'train_cfg.max_iters=2')
    ])
    runner.train()  # resumes at iteration 2 of 2: nothing left to train
    assert run['server'].requests['/run/iter_2.pth'] == 1
    assert runner.iter == 2
    assert list(runner.message_hub.get_scalar('train/loss').data[0]) == run['losses']
    assert_same(runner.model.state_dict(),
                torch.load(run['ckpt'], weights_only=True)['state_dict'])


def test_test_tool_accepts_a_url_of_a_plain_student(run):
    runner = load_tool('test').build_runner([
        run['config'], run['server'].url('/zoo/student.pth'), '--work-dir',
        str(run['tmp'] / 'test'), *tool_args('inputs_test_plain')
    ])
    runner.test()
    assert_same(runner.model.student.state_dict(),
                torch.load(run['plain'], weights_only=True)['state_dict'])


def test_load_from_a_url_of_a_plain_student(run):
    url = run['server'].url('/zoo/student.pth')
    runner = load_tool('train').build_runner([
        run['config'], '--work-dir', str(run['tmp'] / 'load_from'),
        *tool_args('inputs_load_from', f'load_from={url}')
    ])
    runner.load_or_resume()
    assert_same(runner.model.student.state_dict(),
                torch.load(run['plain'], weights_only=True)['state_dict'])


def test_test_checkpoint_that_does_not_fit_is_an_error(run):
    with pytest.raises(CheckpointError, match=r"^checkpoint: '.*teacher_deeplabv3\.pth' does "
                       r'not fit the model to test \(the student of SegmentationDistiller\): '
                       r'\d+ of \d+ tensors fit; .*other shape'):
        load_tool('test').build_runner([
            run['config'], run['teacher_ckpt'], '--work-dir', str(run['tmp'] / 'misfit'),
            *tool_args('inputs_test_misfit')
        ])


# ------------------------------------------------------------------ issue 32: resume, load_from
def train_args(run, name, *options, resume=None):
    resume = ['--resume', resume] if resume else []
    return [run['config'], '--work-dir', str(run['tmp'] / name), *resume,
            *tool_args(name, *options)]


def variant_of_the_run(run, name, state_dict):
    """The run's iter_2.pth (optimizer, schedule, message hub) with other weights."""
    checkpoint = torch.load(run['ckpt'], weights_only=True)
    checkpoint['state_dict'] = state_dict
    path = str(run['tmp'] / name)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope='module')
def det_checkpoint(run):
    """The run's iter_2.pth with the weights of a tiny RetinaNet distiller's student in its
    ``student.*``: 95 of the 149 student tensors of the tiny DeepLabV3 fit (the ResNet
    stages); the stem and both heads do not."""
    cfg = Config.fromstring("_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']\n"
                            f'model = {tiny_retinanet(8, 16)!r}\n', '.py')
    with DefaultScope.overwrite_default_scope('mmdet'):
        retinanet = MODELS.build(cfg.model)
    return variant_of_the_run(run, 'retinanet_distiller_iter_2.pth',
                              {f'student.{k}': v for k, v in retinanet.state_dict().items()})


@pytest.mark.parametrize('case', ['num_classes', 'retinanet_distiller'])
def test_resume_needs_every_tensor_of_the_model(run, det_checkpoint, case):
    """Both checkpoints fit more than half of the student, so they passed the MIN_FIT rule:
    the run died in mmengine's resume (the optimizer's parameter groups differ) or at the
    first SGD step. Now the tool fails before training, naming --resume and the tensors."""
    if case == 'num_classes':  # the run's checkpoint with 7 classes instead of 19
        state = torch.load(run['ckpt'], weights_only=True)['state_dict']
        state.update({k: v[:7] for k, v in state.items() if '.conv_seg.' in k})
        checkpoint = variant_of_the_run(run, 'seven_classes_iter_2.pth', state)
        detail = (r"other shape 'student\.decode_head\.conv_seg\.weight' \(checkpoint "
                  r'\[7, 16, 1, 1\] vs model \[19, 16, 1, 1\]\)')
    else:
        checkpoint = det_checkpoint
        detail = r"missing 'student\.backbone\.stem\.0\.weight'.*not in the model 'student\."
    with pytest.raises(CheckpointError, match=rf"^--resume: '{re.escape(checkpoint)}' does not "
                       r'fit the model to resume \(SegmentationDistiller\): (\d+) of (\d+) '
                       rf'tensors fit; .*{detail}.*Resuming needs every tensor of the model') \
            as error:
        load_tool('train').build_runner(
            train_args(run, f'resume_{case}', 'train_cfg.max_iters=3', resume=checkpoint))
    fit, total = map(int, re.search(r'(\d+) of (\d+) tensors fit', str(error.value)).groups())
    assert 0.5 * total <= fit < total


def test_resume_from_weights_only_is_refused_naming_load_from(run):
    """An exported (plain) student has no training state to resume: the tool says to use
    load_from (mmengine failed with KeyError: 'message_hub')."""
    with pytest.raises(CheckpointError, match=rf"^--resume: '{re.escape(run['plain'])}' holds "
                       r'weights only \(no message_hub\), e.g. an exported or plain student '
                       rf".*--cfg-options load_from={re.escape(run['plain'])}$"):
        load_tool('train').build_runner(
            train_args(run, 'resume_plain', 'train_cfg.max_iters=3', resume=run['plain']))


def test_resume_refuses_a_config_text_mmengine_would_run(run, tmp_path):
    """mmengine's resume runs ``Config.fromstring(meta['config'])``: Python code in a
    checkpoint that passes the weights_only policy."""
    marker = tmp_path / 'RAN'
    checkpoint = torch.load(run['ckpt'], weights_only=True)
    checkpoint['meta']['config'] = f"gpu_ids = __import__('os').system('touch {marker}')\n"
    path = str(tmp_path / 'config_code_iter_2.pth')
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=rf"^--resume: '{re.escape(path)}' has "
                       r"meta\['config'\], a config text that mmengine's resume would run"):
        load_tool('train').build_runner(
            train_args(run, 'resume_config_code', 'train_cfg.max_iters=3', resume=path))
    assert not marker.exists()


def test_load_from_another_model_warns_naming_the_modules_left_at_init(run, det_checkpoint,
                                                                       monkeypatch):
    """95 of 149 student tensors fit: a warning names load_from, the fit and the modules
    that keep their initial weights, and exactly those modules keep them."""
    logged = []
    monkeypatch.setattr(run_checkpoint, 'print_log', lambda msg, *a, **k: logged.append(msg))
    runner = load_tool('train').build_runner(
        train_args(run, 'load_from_det', f'load_from={det_checkpoint}'))
    assert len(logged) == 1 and logged[0].startswith(
        f'load_from: {det_checkpoint!r} fits 95 of 149 tensors of the student of '
        'SegmentationDistiller; left at their initial weights: student.backbone.stem, '
        "student.decode_head, student.auxiliary_head (95 of 149 tensors fit; missing 'student.")
    left = ('student.backbone.stem.', 'student.decode_head.', 'student.auxiliary_head.')
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.load_or_resume()
    source = torch.load(det_checkpoint, weights_only=True)['state_dict']
    for key, value in runner.model.state_dict().items():
        if key.startswith(left) or not key.startswith('student.'):
            assert torch.equal(value, before[key]), key
        elif not key.endswith('num_batches_tracked'):
            assert torch.equal(value, source[key]), key
    # Less than half: an error naming load_from, before training.
    with pytest.raises(CheckpointError, match=rf"^load_from: '{re.escape(run['teacher_ckpt'])}' "
                       r'does not fit the student of SegmentationDistiller: \d+ of 149 tensors '
                       r'fit; .*\(at least 50% must\)'):
        load_tool('train').build_runner(
            train_args(run, 'load_from_teacher', f"load_from={run['teacher_ckpt']}"))


def test_resume_past_max_iters_is_an_error(run):
    """It exited 0 at once, without training or a message."""
    with pytest.raises(ValueError, match=r'^train_cfg\.max_iters=1 is below the iteration of '
                       rf"the checkpoint to resume \(2, --resume '{re.escape(run['ckpt'])}'\): "
                       'nothing would be trained'):
        load_tool('train').build_runner(
            train_args(run, 'resume_past_end', 'train_cfg.max_iters=1', resume=run['ckpt']))


def test_resume_warns_about_each_changed_setting_and_does_what_it_says(run, monkeypatch):
    """The learning rate, the distillation loss weight and the batch size changed since the
    checkpoint: one warning each; the checkpoint's lr is kept, the loss weight applies
    from iteration 3."""
    logged = []
    monkeypatch.setattr(run_checkpoint, 'print_log', lambda msg, *a, **k: logged.append(msg))
    saved_lr = torch.load(run['ckpt'], weights_only=True)['optimizer']['param_groups'][0]['lr']
    runner = load_tool('train').build_runner(
        train_args(run, 'resume_changed', 'train_cfg.max_iters=3',
                   'optim_wrapper.optimizer.lr=0.2', 'model.loss_decode.loss_weight=0.0',
                   'train_dataloader.batch_size=4', resume=run['ckpt']))
    prefix = '--resume from iteration 2: '
    assert sorted(logged) == [
        prefix + 'model.loss_decode.loss_weight: 1.0 -> 0.0: applies after iteration 2; up to '
        'it the run trained with the old value',
        prefix + 'optim_wrapper.optimizer.lr: 0.02 -> 0.2: not used: resuming restores the '
        "optimizer state (each parameter group's hyperparameters) saved in the checkpoint, "
        'with the old value (to train with the new one, start a new run from the checkpoint '
        'with load_from)',
        prefix + 'train_cfg.max_iters: 2 -> 3: training ends at the new value; '
        'param_scheduler is resumed as the checkpoint saved it (its `end` included), not '
        'rebuilt for the new length',
        prefix + 'train_dataloader.batch_size: 2 -> 4: applies after iteration 2; up to it '
        'the run trained with the old value',
    ]
    runner.train()
    assert runner.iter == 3
    assert runner.optim_wrapper.param_groups[0]['lr'] == pytest.approx(saved_lr, rel=1e-3)
    dist_decode = runner.message_hub.get_scalar('train/loss_dist_decode').data[0]
    assert len(dist_decode) == 3 and all(dist_decode[:2] > 0) and dist_decode[2] == 0
