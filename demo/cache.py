# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The trained teacher, cached and reused by later runs of the demo.

A teacher is keyed by a hash of its fully resolved config (the demo config with every
``_base_`` merged, plus the demo's schedule and seed options), the dataset fingerprint,
the CPU settings (pinned or not, threads) and the mmdist version. Its work directory
``<task>/teacher/<key>/`` is the cache entry; ``entry.json`` (written last) marks it
complete. Changing the teacher config, the data, the schedule or the CPU settings gives
a new key, hence a new teacher.
"""
import hashlib
import json
import os.path as osp
from typing import Dict, Optional, Sequence

from mmengine.config import Config

from mmdist.version import __version__
from .stages import StageResult

ENTRY = 'entry.json'


def teacher_key(config: str, options: Sequence[str], data_fingerprint: str,
                cpu: Dict) -> str:
    """A short hash of everything that decides the trained teacher's weights; ``cpu``:
    the CPU settings it trains with (:meth:`~mmdist.utils.cpu_determinism.CpuPinning.key`:
    a teacher trained unpinned is not reused by a pinned run, nor the other way round)."""
    cfg = Config.fromfile(config)
    payload = json.dumps(
        dict(config=cfg.to_dict(), options=list(options), data=data_fingerprint,
             mmdist=__version__, cpu=cpu),
        sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class TeacherCache:
    """Cached teacher runs of one task, under ``<task_dir>/teacher/``."""

    def __init__(self, task_dir: str) -> None:
        self.root = osp.join(task_dir, 'teacher')

    def work_dir(self, key: str) -> str:
        """Where the teacher with this key is (or will be) trained."""
        return osp.join(self.root, key)

    def load(self, key: str) -> Optional[StageResult]:
        """The finished teacher run with this key, or None."""
        path = osp.join(self.work_dir(key), ENTRY)
        if not osp.isfile(path):
            return None
        with open(path, encoding='utf-8') as f:
            result = StageResult.from_json(json.load(f), base_dir=self.work_dir(key))
        if not osp.isfile(result.checkpoint):
            return None
        result.cached = True
        return result

    def store(self, key: str, result: StageResult) -> None:
        """Mark the teacher run with this key complete (paths stored relative)."""
        path = osp.join(self.work_dir(key), ENTRY)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(result.to_json(base_dir=self.work_dir(key)), f, indent=1)
