# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The faithfulness study (``tools/analysis_tools/seg_faithfulness_study.py``): students
distilled on the demo's data (segmentation studies A-D, detection study E), evaluated
against their teacher.

Modules, one concept each:

* :mod:`~mmdist.study.variants`: the studies, their data, students, evaluators and option
  values;
* :mod:`~mmdist.study.metrics`: per-class IoU and agreement as metric keys;
* :mod:`~mmdist.study.configs`: the config file of each run (demo config + overrides);
* :mod:`~mmdist.study.runner`: data, teacher and students of a study, in order;
* :mod:`~mmdist.study.table` / :mod:`~mmdist.study.report`: the table, report and JSON.
"""
from .runner import StudyResult, StudySettings, run_study
from .variants import STUDIES

__all__ = ['STUDIES', 'StudyResult', 'StudySettings', 'run_study']
