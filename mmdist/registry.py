# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""mmdist's registries: children of mmengine's root registries in scope ``mmdist``.

Components registered here are reachable from any OpenMMLab config as
``type='mmdist.<Name>'``; ``locations`` lets mmengine import the defining modules
lazily the first time such a name is looked up.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

#: Losses and distiller models.
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['mmdist.models'])
#: Runner hooks.
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmdist.engine'])
#: Evaluation metrics (faithfulness and calibration of a student against its teacher).
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['mmdist.evaluation'])
#: Runner loops (paired teacher-student validation and test loops).
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmdist.engine'])
