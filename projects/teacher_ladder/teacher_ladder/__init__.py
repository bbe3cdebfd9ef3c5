# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The teacher-ladder study (projects/teacher_ladder, see its README.md).

Modules, one concept each:

* :mod:`.ladder`: the tasks, the student, the teacher ladder and the methods (configs);
* :mod:`.runs`: one run (train through ``tools/train.py`` then test), its cache entry;
* :mod:`.study`: all runs of a task, in order;
* :mod:`.metrics`: ``mmdist.ClsAgreementMetric`` (classification agreement);
* :mod:`.summary`: gains and agreement per teacher, tables, findings;
* :mod:`.plot` / :mod:`.report`: the figure, report.md and results.json.
"""
