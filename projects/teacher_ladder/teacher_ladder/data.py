# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The study's synthetic dataset: generated once per work dir, fingerprinted.

``manifest.json`` holds the generator arguments and a hash of every file; a later study
with the same arguments reuses the files, and the fingerprint keys every run (a changed
dataset retrains everything).
"""
import hashlib
import json
import os
import os.path as osp
import shutil
from typing import Dict, Sequence

MANIFEST = 'manifest.json'


def fingerprint_tree(root: str, skip: Sequence[str] = (MANIFEST, )) -> str:
    """sha256 over the relative paths and contents of every file under ``root``."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = osp.join(folder, name)
            rel = osp.relpath(path, root)
            if rel in skip:
                continue
            digest.update(rel.encode())
            with open(path, 'rb') as f:
                digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def prepare_data(task, root: str, spec: Dict) -> str:
    """Generate the task's dataset into ``root`` unless the same one is there; returns
    its fingerprint (which keys every run)."""
    manifest = osp.join(root, MANIFEST)
    wanted = json.loads(json.dumps(dict(task=task.name, spec=spec)))
    if osp.isfile(manifest):
        with open(manifest, encoding='utf-8') as f:
            recorded = json.load(f)
        if recorded.get('args') == wanted and fingerprint_tree(root) == recorded.get(
                'fingerprint'):
            return recorded['fingerprint']
    if osp.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root)
    task.make_data(root, spec)
    fingerprint = fingerprint_tree(root)
    with open(manifest, 'w', encoding='utf-8') as f:
        json.dump(dict(args=wanted, fingerprint=fingerprint), f, indent=1)
    return fingerprint

