# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Read fields of data samples as the evaluator hands them over: ``to_dict()``
dictionaries (nested elements converted) or, inside lists, data elements."""
from typing import Any, Optional

from torch import Tensor


def field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for dicts, ``obj.name`` for data elements, else ``default``."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def pixel_data(obj: Any) -> Optional[Tensor]:
    """The tensor of a ``PixelData`` (dict or element) or of a bare tensor."""
    if obj is None or isinstance(obj, Tensor):
        return obj
    return field(obj, 'data')
