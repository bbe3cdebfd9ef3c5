# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The faithfulness study (``python projects/faithfulness_study/run.py``): students
distilled on the demo's data (segmentation studies A-D, detection study E), evaluated
against their teacher. Research code next to the ``mmdist`` package, not part of it.

Modules, one concept each:

* :mod:`~projects.faithfulness_study.variants`: the studies, their data, students, evaluators and option
  values;
* :mod:`~projects.faithfulness_study.metrics`: per-class IoU and agreement as metric keys;
* :mod:`~projects.faithfulness_study.configs`: the config file of each run (demo config + overrides);
* :mod:`~projects.faithfulness_study.runner`: data, teacher and students of a study, in order;
* :mod:`~projects.faithfulness_study.table` / :mod:`~projects.faithfulness_study.report`: the table, report and JSON.
"""
from .runner import StudyResult, StudySettings, run_study
from .variants import STUDIES

__all__ = ['STUDIES', 'StudyResult', 'StudySettings', 'run_study']
