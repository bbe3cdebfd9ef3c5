# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Each task's components import only their own toolbox: a detection user needs neither
mmseg nor mmpretrain importable (seen: mmpretrain 1.2 fails to import next to
transformers 5), and so on."""
import subprocess
import sys

import pytest

TOOLBOXES = ('mmdet', 'mmseg', 'mmpretrain')


def run_without(blocked, code):
    """Run ``code`` in a fresh interpreter in which the ``blocked`` modules cannot be
    imported (``sys.modules[name] = None`` makes ``import name`` raise ImportError)."""
    prelude = ''.join(f'sys.modules[{name!r}] = None\n' for name in blocked)
    out = subprocess.run([sys.executable, '-c', f'import sys\n{prelude}{code}'],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_importing_mmdist_models_imports_no_toolbox():
    stdout = run_without([], 'import mmdist, mmdist.models, mmdist.engine, mmdist.evaluation\n'
                         'print(sorted(m for m in sys.modules if m.split(".")[0] in '
                         f'{TOOLBOXES!r}))')
    assert stdout.strip() == '[]'


@pytest.mark.parametrize('name, toolbox', [
    ('DetectionDistiller', 'mmdet'),
    ('SegmentationDistiller', 'mmseg'),
    ('ClassificationDistiller', 'mmpretrain'),
    ('BatchMixSegDataPreprocessor', 'mmseg'),
])
def test_each_task_needs_only_its_toolbox(name, toolbox):
    others = [other for other in TOOLBOXES if other != toolbox]
    other_task = {'mmdet': 'SegmentationDistiller', 'mmseg': 'ClassificationDistiller',
                  'mmpretrain': 'DetectionDistiller'}[toolbox]
    stdout = run_without(others, f'''
from mmengine.registry import MODELS
from mmdist.models.distillers import {'BaseDistiller' if 'Distiller' not in name else name}
cls = MODELS.get('mmdist.{name}')
loss = MODELS.build(dict(type='mmdist.DISTLoss'))
print(cls.__name__, type(loss).__name__)
try:
    MODELS.get('mmdist.{other_task}')
except ImportError as err:
    print('ImportError:', err)
''')
    lines = stdout.strip().splitlines()
    assert lines[0] == f'{name} DISTLoss'
    assert lines[1].startswith(f'ImportError: mmdist.{other_task} needs ')
