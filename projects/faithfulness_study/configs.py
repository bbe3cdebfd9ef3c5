# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The config files the study trains and tests: a demo config plus overrides.

Each is written next to its run (``<work dir>/<name>.py``) so that what ran can be read
back: ``_base_`` is the demo config, then the variant's model overrides, then the paired
test loop and the per-class evaluators (:mod:`projects.faithfulness_study.metrics`).
"""
import os
import os.path as osp
from typing import Dict, Optional, Sequence

from demo.paths import demo_config


def write_config(path: str, base: str, evaluators: Sequence[Dict],
                 model: Optional[Dict] = None, paired: bool = True,
                 comment: str = '', overrides: Optional[Dict] = None) -> str:
    """Write a config inheriting ``configs/demo/<base>``; returns ``path``.

    Args:
        path: the file to write.
        base: demo config file name (e.g. ``'seg_student_dist.py'``).
        evaluators: the ``test_evaluator`` list.
        model: overrides merged into ``model``.
        overrides: other top-level entries merged into the base's (e.g.
            ``train_dataloader``).
        paired: test with ``mmdist.PairedTestLoop`` (students of a distiller); False keeps
            the plain test loop (the teacher evaluated alone).
        comment: first line of the file.
    """
    lines = [f'# {comment or "written by projects/faithfulness_study"}',
             f'_base_ = [{demo_config(base)!r}]',
             "custom_imports = {'imports': ['mmdist', 'projects.faithfulness_study.metrics'], "
             "'allow_failed_imports': False}"]
    if model:
        lines.append(f'model = {model!r}')
    for key, value in (overrides or {}).items():
        lines.append(f'{key} = {value!r}')
    if paired:
        lines.append("test_cfg = {'type': 'mmdist.PairedTestLoop'}")
    lines.append(f'test_evaluator = {list(evaluators)!r}')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return path
