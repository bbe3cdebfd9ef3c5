# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""mmdist's registries: children of mmengine's root registries in scope ``mmdist``.

Components registered here are reachable from any OpenMMLab config as
``type='mmdist.<Name>'``; ``locations`` lets mmengine import the defining modules
lazily the first time such a name is looked up. The task components (distillers, the
segmentation data preprocessor) are imported only when their own name is looked up, so
each task needs only its own toolbox (mmdet, mmseg or mmpretrain) to be importable.
"""
from importlib import import_module

from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

#: Task components: name -> (defining module, the toolbox it imports).
TASK_MODULES = {
    'DetectionDistiller': ('mmdist.models.distillers.detection_distiller', 'mmdet'),
    'SegmentationDistiller': ('mmdist.models.distillers.segmentation_distiller', 'mmseg'),
    'ClassificationDistiller': ('mmdist.models.distillers.classification_distiller',
                                'mmpretrain'),
    'BatchMixSegDataPreprocessor': ('mmdist.models.data_preprocessors.seg_batch_mix',
                                    'mmseg'),
    'SegBatchCutMix': ('mmdist.models.data_preprocessors.seg_batch_mix', 'mmseg'),
    'SegBatchMixup': ('mmdist.models.data_preprocessors.seg_batch_mix', 'mmseg'),
}


def import_task_module(name: str):
    """Import the module defining task component ``name``; a clear error if its toolbox
    cannot be imported."""
    module, toolbox = TASK_MODULES[name]
    try:
        return import_module(module)
    except ImportError as err:
        raise ImportError(f'mmdist.{name} needs {toolbox}, which cannot be imported here: '
                          f'{err}') from err


class TaskRegistry(Registry):
    """A Registry that imports a task component's module on its first lookup."""

    def get(self, key: str):
        name = self.split_scope_key(key)[1]
        if name in TASK_MODULES and name not in self._module_dict:
            import_task_module(name)
        return super().get(key)


#: Losses and distiller models.
MODELS = TaskRegistry('model', parent=MMENGINE_MODELS, locations=['mmdist.models'])
#: Runner hooks.
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmdist.engine'])
#: Evaluation metrics (faithfulness and calibration of a student against its teacher).
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['mmdist.evaluation'])
#: Runner loops (paired teacher-student validation and test loops).
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmdist.engine'])
