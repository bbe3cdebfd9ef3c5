# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Faithfulness and calibration metrics of a student measured against its teacher."""
from .metrics import *  # noqa: F401,F403
