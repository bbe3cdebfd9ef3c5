# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Tests of projects/*: the repository root on sys.path, so that ``projects.<name>`` imports
as the projects' configs (``custom_imports``) and scripts import it."""
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
