# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""mmdist.StopDistillHook and the stopped distillers: every distiller logs the same keys
stopped as distilling (its loss_dist_* as 0) and its student's own losses unchanged; the
hook sets the state from the runner's epoch; wrong uses are errors naming the key. (End to
end with the stock RTMDet recipe: tests/test_tools/test_detection_head_configs.py.)"""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from mmdist.engine.hooks import StopDistillHook
from mmdist.registry import HOOKS, MODELS
from mmdist.testing._classification import make_imagenet_shapes, write_classification_configs
from mmdist.testing._detection import write_retinanet_configs
from mmdist.testing._segmentation import write_segmentation_configs

pytestmark = pytest.mark.usefixtures('one_cpu_thread')  # tests/conftest.py


def _batch(model, cfg, scope):
    init_default_scope(scope)
    datasets = __import__(f'{scope}.registry', fromlist=['DATASETS']).DATASETS
    dataset = datasets.build(cfg.train_dataloader.dataset)
    return model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), True)


@pytest.fixture(scope='module')
def distillers(tmp_path_factory, coco_root, cityscapes_root):
    """(scope, config, model overrides) of a detection (with mimic), segmentation (with
    auxiliary loss) and classification distiller."""
    imagenet = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet_shapes(imagenet)
    return {
        'det': ('mmdet', write_retinanet_configs(str(tmp_path_factory.mktemp('det')),
                                                 coco_root)['config'],
                dict(mimic=dict(loss_weight=1.0))),
        'seg': ('mmseg', write_segmentation_configs(str(tmp_path_factory.mktemp('seg')),
                                                    cityscapes_root, 'pspnet')['config'], {}),
        'cls': ('mmpretrain', write_classification_configs(
            str(tmp_path_factory.mktemp('cls')), imagenet)['config'], {}),
    }


@pytest.mark.parametrize('task,dist_keys', [
    ('det', {'loss_dist_cls', 'loss_dist_mimic'}),
    ('seg', {'loss_dist_decode', 'loss_dist_aux'}),
    ('cls', {'loss_dist_cls'})])
def test_stopped_distiller_logs_the_same_keys_as_zeros(distillers, task, dist_keys):
    scope, config, overrides = distillers[task]
    cfg = Config.fromfile(config)
    cfg.model.update(overrides)
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in cfg.model.student:
        cfg.model.data_preprocessor = cfg.data_preprocessor
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    model.train()
    data = _batch(model, cfg, scope)
    torch.manual_seed(1)  # the same dropout masks in both calls
    distilled = model(**copy.deepcopy(data), mode='loss')
    assert set(model.distill_loss_names()) == dist_keys
    assert dist_keys <= set(distilled) and all(distilled[k] > 0 for k in dist_keys)
    model.distill_stopped = True
    torch.manual_seed(1)
    stopped = model(**copy.deepcopy(data), mode='loss')
    assert set(stopped) == set(distilled)
    assert all(stopped[k].item() == 0 for k in dist_keys)
    for key in set(distilled) - dist_keys:  # the student's own losses, as distilling
        torch.testing.assert_close(stopped[key], distilled[key], rtol=1e-5, atol=1e-6)



def _runner(epoch, loop=EpochBasedTrainLoop, model=None):
    train_loop = loop.__new__(loop)
    return SimpleNamespace(epoch=epoch, model=model or _distiller(), train_loop=train_loop)


def _distiller():
    from mmdist.models.distillers import BaseDistiller
    model = BaseDistiller.__new__(BaseDistiller)
    object.__setattr__(model, 'distill_stopped', False)
    return model


def test_hook_follows_the_runners_epoch():
    hook = HOOKS.build(dict(type='mmdist.StopDistillHook', stop_epoch=2))
    assert isinstance(hook, StopDistillHook)
    runner = _runner(0)
    hook.before_train(runner)
    for epoch, stopped in ((0, False), (1, False), (2, True), (3, True)):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        assert runner.model.distill_stopped is stopped, epoch
    runner = _runner(5)  # a run resumed after the stop epoch
    hook.before_train_epoch(runner)
    assert runner.model.distill_stopped


def test_hook_errors_name_the_key():
    for bad in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match='StopDistillHook.stop_epoch: expected an epoch'):
            StopDistillHook(stop_epoch=bad)
    with pytest.raises(TypeError, match='StopDistillHook .custom_hooks.: the model is a '
                       'Linear, not an mmdist distiller'):
        StopDistillHook(1).before_train(_runner(0, model=torch.nn.Linear(1, 1)))
    with pytest.raises(TypeError, match='StopDistillHook.stop_epoch: the run trains by '
                       'iterations'):
        StopDistillHook(1).before_train(_runner(0, loop=IterBasedTrainLoop))
