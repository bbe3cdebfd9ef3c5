# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Where the demo finds ``tools/*.py`` and ``configs/demo/*.py``: the repository root,
which holds ``demo/``. The demo runs the very scripts a user runs (``tools/train.py``,
``tools/test.py``), imported as modules.
"""
import importlib.util
import os.path as osp
from types import ModuleType
from typing import Dict

#: The repository root.
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
_TOOLS: Dict[str, ModuleType] = {}


def resource_root() -> str:
    """The folder holding ``tools/`` and ``configs/``."""
    return ROOT


def demo_config(name: str) -> str:
    """Absolute path of ``configs/demo/<name>``."""
    path = osp.join(resource_root(), 'configs', 'demo', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'demo config {path!r} does not exist')
    return path


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` once (it exposes ``build_runner`` and ``main``)."""
    if name not in _TOOLS:
        path = osp.join(resource_root(), 'tools', f'{name}.py')
        spec = importlib.util.spec_from_file_location(f'mmdist_demo_tools_{name}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOLS[name] = module
    return _TOOLS[name]
