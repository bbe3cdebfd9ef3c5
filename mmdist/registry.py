# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""mmdist's registries: children of mmengine's root registries in scope ``mmdist``.

Components registered here are reachable from any OpenMMLab config as
``type='mmdist.<Name>'``; ``locations`` lets mmengine import the defining modules
lazily the first time such a name is looked up.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

#: Losses and distiller models.
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['mmdist.models'])
#: Runner hooks.
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmdist.engine'])
