# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Export a run's student and evaluate it with the student library's own tools/test.py."""
import glob
import importlib
import json
import os.path as osp
import runpy
import sys
from typing import Dict, Optional, Sequence

from conftest import load_tool


def export_run_student(config: str, work_dir: str, out_dir: str) -> Dict[str, str]:
    """tools/model_converters/export_student.py on the run's (only) checkpoint."""
    (ckpt, ) = glob.glob(osp.join(work_dir, '*_*.pth'))
    load_tool('model_converters/export_student').main([config, ckpt, out_dir, '--name',
                                                       'student'])
    return dict(config=osp.join(out_dir, 'student.py'),
                checkpoint=osp.join(out_dir, 'student.pth'))


def library_test(scope: str, config: str, checkpoint: str, work_dir: str,
                 cfg_options: Sequence[str] = (), out: Optional[str] = None) -> Dict[str, float]:
    """``python <scope>/tools/test.py CONFIG CHECKPOINT [--out OUT]`` of the installed
    mmdet / mmseg / mmpretrain (their ``.mim/tools/test.py``), run in this process;
    returns the metrics its logger wrote (``<work_dir>/<timestamp>/<timestamp>.json``).
    ``out``: mmdet and mmpretrain dump predictions to this .pkl, mmseg writes the
    predicted label maps as PNGs into this folder."""
    package = osp.dirname(importlib.import_module(scope).__file__)
    script = osp.join(package, '.mim', 'tools', 'test.py')
    # Visualizers are named instances: a run in the same process needs its own name.
    options = [f'visualizer.name={scope}_plain_{osp.basename(work_dir)}', *cfg_options]
    argv = sys.argv
    sys.argv = [script, config, checkpoint, '--work-dir', work_dir,
                *(['--out', out] if out else []), '--cfg-options', *options]
    try:
        runpy.run_path(script, run_name='__main__')
    finally:
        sys.argv = argv
    (log, ) = glob.glob(osp.join(work_dir, '*', '*.json'))
    with open(log, encoding='utf-8') as f:
        (metrics, ) = [json.loads(line) for line in f]
    return metrics
