# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .paired_loops import PairedEvaluation, PairedTestLoop, PairedValLoop

__all__ = ['PairedEvaluation', 'PairedTestLoop', 'PairedValLoop']
