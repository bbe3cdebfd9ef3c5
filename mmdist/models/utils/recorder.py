# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Record inputs/outputs of submodules while a model runs its own, unchanged forward."""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Tuple

from torch import nn


class Record:
    """The calls of one module inside a :func:`record_calls` block: ``args`` and
    ``output`` of the first call, and ``calls``, the (args, output) of every call in
    order (a head's classifier shared by all FPN levels runs once per level)."""

    def __init__(self) -> None:
        self.called = False
        self.args: Tuple = ()
        self.output = None
        self.calls: List[Tuple[Tuple, Any]] = []


@contextmanager
def record_calls(modules: Dict[str, nn.Module]) -> Iterator[Dict[str, Record]]:
    """Record the positional inputs and the output of every call of each module.

    Forward hooks are attached for the duration of the block only, so the student's own
    ``loss()`` runs exactly as in mmdet/mmseg while the distiller reads its head outputs.

    Args:
        modules: name -> module to watch.

    Yields:
        name -> :class:`Record`, filled in as the modules run.
    """
    records = {name: Record() for name in modules}
    handles = []

    def make_hook(record: Record):

        def hook(module, args, output):
            if not record.called:
                record.called = True
                record.args = args
                record.output = output
            record.calls.append((args, output))

        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(records[name])))
        yield records
    finally:
        for handle in handles:
            handle.remove()
