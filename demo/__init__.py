# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""``make demo`` (``python -m demo``): teacher vs student vs student + KD vs student +
DIST, end to end on CPU. Not part of the installed ``mmdist`` package.

Modules, one concept each:

* :mod:`~demo.tasks`: the detection and segmentation tasks (configs, data, metrics);
* :mod:`~demo.data`: synthetic dataset generation and fingerprint;
* :mod:`~demo.cache`: the cached teacher;
* :mod:`~demo.stages`: one train-then-test run (``tools/train.py``, ``tools/test.py``);
* :mod:`~demo.console`: progress output and per-stage log files;
* :mod:`~demo.report` / :mod:`~demo.plot`: the table, report and figure;
* :mod:`~demo.pipeline`: all of it in order (:func:`run_demo`).
"""
from .pipeline import DemoOptions, DemoRun, run_demo
from .tasks import ROLES, TASKS

__all__ = ['DemoOptions', 'DemoRun', 'run_demo', 'ROLES', 'TASKS']
