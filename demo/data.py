# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Generate a task's synthetic dataset once and fingerprint it.

The folder gets a ``manifest.json`` with the generator arguments and a hash of every
file. A second run with the same arguments reuses the files; the hash keys the teacher
cache (:mod:`demo.cache`), so a changed dataset retrains the teacher.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
from dataclasses import dataclass
from typing import Dict, Optional

from .tasks import DataSpec, DemoTask

MANIFEST = 'manifest.json'
#: Bump when the generator's output changes for the same arguments.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class PreparedData:
    """A generated dataset: its folder, fingerprint and split sizes."""

    root: str
    fingerprint: str
    splits: Dict[str, int]
    reused: bool


def hash_tree(root: str, skip: str = MANIFEST) -> str:
    """sha256 over the relative paths and contents of every file under ``root``."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = osp.join(folder, name)
            rel = osp.relpath(path, root)
            if rel == skip:
                continue
            digest.update(rel.encode())
            with open(path, 'rb') as f:
                digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def _read_manifest(root: str) -> Optional[Dict]:
    try:
        with open(osp.join(root, MANIFEST), encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def prepare_data(task: DemoTask, root: str, spec: DataSpec) -> PreparedData:
    """Make sure ``root`` holds exactly the dataset ``spec`` describes.

    Reuses the folder when its manifest has the same arguments and its files still
    hash to the recorded fingerprint; otherwise deletes it and generates again.
    """
    wanted = dict(task=task.name, generator=GENERATOR_VERSION, spec=spec.as_kwargs())
    wanted = json.loads(json.dumps(wanted))  # tuples -> lists, as read back from JSON
    manifest = _read_manifest(root)
    if manifest is not None and manifest.get('args') == wanted:
        if hash_tree(root) == manifest.get('fingerprint'):
            return PreparedData(root, manifest['fingerprint'], dict(spec.splits), True)
    if osp.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root)
    task.make_data(root, spec)
    fingerprint = hash_tree(root)
    with open(osp.join(root, MANIFEST), 'w', encoding='utf-8') as f:
        json.dump(dict(args=wanted, fingerprint=fingerprint), f, indent=1)
    return PreparedData(root, fingerprint, dict(spec.splits), False)
