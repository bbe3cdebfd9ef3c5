# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The teacher-ladder study (projects/teacher_ladder, see its README.md).

Modules, one concept each:

* :mod:`.ladder`: the tasks, the student, the teacher ladder and the methods (configs);
* :mod:`.data`: the synthetic dataset, generated once and fingerprinted;
* :mod:`.runs`: one run (train with the mmengine Runner, then test) and its cache entry;
* :mod:`.executor`: runs in this process or in worker processes (``--jobs``);
* :mod:`.study`: all runs of a task, each as soon as what it needs exists;
* :mod:`.metrics`: ``mmdist.ClsAgreementMetric`` (classification agreement);
* :mod:`.summary`: gains and agreement per teacher, tables, findings;
* :mod:`.plot` / :mod:`.report`: the figure, report.md and results.json;
* :mod:`.cost`: a full study's cost estimated from short runs (``measure_cost.py``).
"""
