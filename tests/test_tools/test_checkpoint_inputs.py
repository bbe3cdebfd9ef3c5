# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Checkpoints given to the tools: URLs for ``--resume``, ``load_from`` and tools/test.py,
plain student checkpoints on a distillation config, checkpoints that do not fit."""
import pytest
import torch
from demo.paths import load_tool

from mmdist.apis import student_checkpoint
from mmdist.testing._http import FileServer
from mmdist.testing._segmentation import write_segmentation_configs
from mmdist.utils import CheckpointError


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
