# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .dense import dense_to_rows

__all__ = ['dense_to_rows']
