# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .export import export_student, student_checkpoint, student_config

__all__ = ['export_student', 'student_checkpoint', 'student_config']
