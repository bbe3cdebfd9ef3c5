# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""``make demo``: teacher vs student vs student + KD vs student + DIST, end to end on CPU.

Modules, one concept each:

* :mod:`~mmdist.demo.tasks`: the detection and segmentation tasks (configs, data, metrics);
* :mod:`~mmdist.demo.data`: synthetic dataset generation and fingerprint;
* :mod:`~mmdist.demo.cache`: the cached teacher;
* :mod:`~mmdist.demo.stages`: one train-then-test run (``tools/train.py``, ``tools/test.py``);
* :mod:`~mmdist.demo.console`: progress output and per-stage log files;
* :mod:`~mmdist.demo.report` / :mod:`~mmdist.demo.plot`: the table, report and figure;
* :mod:`~mmdist.demo.pipeline`: all of it in order (:func:`run_demo`).
"""
from .pipeline import DemoOptions, DemoRun, run_demo
from .tasks import ROLES, TASKS

__all__ = ['DemoOptions', 'DemoRun', 'run_demo', 'ROLES', 'TASKS']
