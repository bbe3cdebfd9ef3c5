# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Turn a distillation run into a plain student that mmdet / mmseg / mmdeploy load as is."""
import copy
import os
import os.path as osp
from typing import Dict, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope

from mmdist.registry import MODELS
from mmdist.utils.checkpoint import CheckpointError, read_checkpoint
from mmdist.utils.checkpoint_fit import fit_checkpoint

STUDENT_PREFIX = 'student.'
#: Checkpoint meta entries kept in the exported student (plain Python values only).
KEPT_META = ('dataset_meta', 'epoch', 'iter', 'mmengine_version', 'seed', 'experiment_name',
             'time')
#: mmdist data preprocessors of students -> (the plain class the exported student uses,
#: the training-only arguments it drops). The plain class does the same at test time.
PLAIN_DATA_PREPROCESSORS = {
    'mmdist.BatchMixSegDataPreprocessor': ('SegDataPreProcessor', ('batch_augments', )),
}


def _plain_data_preprocessor(model: ConfigDict) -> None:
    """In place: an mmdist data preprocessor of ``model`` -> its plain library class."""
    preprocessor = model.get('data_preprocessor')
    if preprocessor is None or preprocessor.get('type') not in PLAIN_DATA_PREPROCESSORS:
        return
    plain_type, dropped = PLAIN_DATA_PREPROCESSORS[preprocessor['type']]
    model.data_preprocessor = ConfigDict(
        {k: v for k, v in preprocessor.items() if k not in dropped}, type=plain_type)


def _mmdist_types(cfg, key: str):
    """``(key, type)`` of every ``type='mmdist.*'`` inside ``cfg`` (nested dicts/lists)."""
    if isinstance(cfg, dict):
        if str(cfg.get('type', '')).startswith('mmdist.'):
            yield key, cfg['type']
        for name, value in cfg.items():
            yield from _mmdist_types(value, f'{key}.{name}')
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            yield from _mmdist_types(value, f'{key}[{i}]')


def student_config(cfg: Config) -> Config:
    """The distillation config with ``model`` replaced by its student, mmdist removed.

    ``custom_imports`` of mmdist and mmdist's own hooks are dropped and mmdist's data
    preprocessors become their plain class (:data:`PLAIN_DATA_PREPROCESSORS`), so the
    result needs only the student's library; ``load_from`` / ``resume`` are cleared.
    """
    if 'student' not in cfg.model:
        raise ValueError(f'model: {cfg.model.get("type")!r} is not an mmdist distiller '
                         '(no `model.student`)')
    plain = copy.deepcopy(cfg)
    plain.model = copy.deepcopy(cfg.model.student)
    _plain_data_preprocessor(plain.model)
    leftover = next(_mmdist_types(plain.model, 'model.student'), None)
    if leftover is not None:
        raise ValueError(f'{leftover[0]}: {leftover[1]!r} is an mmdist module without a plain '
                         'mmdet/mmseg equivalent; the exported student cannot use it')
    imports = plain.get('custom_imports')
    if imports is not None:
        kept = [m for m in imports.get('imports', []) if m.split('.')[0] != 'mmdist']
        if kept:
            plain.custom_imports = dict(imports, imports=kept)
        else:
            plain.pop('custom_imports')
    if plain.get('custom_hooks'):
        plain.custom_hooks = [h for h in plain.custom_hooks
                              if not str(h.get('type', '')).startswith('mmdist.')]
    plain.load_from = None
    plain.resume = False
    return plain


def _plain(value):
    """Keep only plain Python containers and scalars (loadable with weights_only)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, 'item'):  # numpy / torch scalars
        return value.item()
    return str(value)


def student_checkpoint(checkpoint: Dict) -> Tuple[Dict, Dict[str, int]]:
    """``{'meta', 'state_dict'}`` of the student only, and the dropped keys by prefix."""
    state = checkpoint.get('state_dict')
    if not isinstance(state, dict):
        raise ValueError('checkpoint has no `state_dict`')
    student, dropped = {}, {}
    for key, value in state.items():
        if key.startswith(STUDENT_PREFIX):
            student[key[len(STUDENT_PREFIX):]] = value
        else:
            prefix = key.split('.')[0]
            dropped[prefix] = dropped.get(prefix, 0) + 1
    if not student:
        raise ValueError('checkpoint has no `student.*` weights: is it a distillation '
                         'checkpoint?')
    meta = {k: _plain(v) for k, v in checkpoint.get('meta', {}).items() if k in KEPT_META}
    meta['exported_by'] = 'mmdist export_student'
    return dict(meta=meta, state_dict=student), dropped


def check_student_fits(plain_cfg: Config, state_dict: Dict, checkpoint: str) -> None:
    """Build the plain student of ``plain_cfg`` and check that ``state_dict`` is exactly its
    weights (same keys and shapes); the error names the keys that differ."""
    with DefaultScope.overwrite_default_scope(plain_cfg.get('default_scope')):
        # A copy: DETR-family detectors write into their bbox_head config when built,
        # and the exported config must stay the one plain mmdet builds from.
        model = MODELS.build(copy.deepcopy(plain_cfg.model))
    fit = fit_checkpoint(model.state_dict(), state_dict)
    if fit.missing or fit.mismatched or fit.unexpected:
        raise CheckpointError(
            f'checkpoint: the student weights of {checkpoint!r} are not those of the config\'s '
            f'model.student ({plain_cfg.model.get("type")}): {fit.describe()}. Export a '
            'checkpoint with the distillation config it was trained with')


def export_student(config: str, checkpoint: str, out_dir: str,
                   name: str = None) -> Tuple[str, str, Dict[str, int]]:
    """Write ``<out_dir>/<name>.pth`` (student weights) and ``<name>.py`` (plain config).

    Args:
        config: the distillation config the checkpoint was trained with.
        checkpoint: the distillation checkpoint (loaded with ``weights_only=True``).
        out_dir: output folder (created).
        name: output file stem; defaults to the checkpoint's stem + ``_student``.

    Returns:
        (checkpoint path, config path, dropped keys counted by top-level prefix).
    """
    cfg = Config.fromfile(config)
    plain_cfg = student_config(cfg)
    exported, dropped = student_checkpoint(read_checkpoint(checkpoint, map_location='cpu'))
    check_student_fits(plain_cfg, exported['state_dict'], checkpoint)
    exported['meta']['cfg'] = plain_cfg.pretty_text
    name = name or osp.splitext(osp.basename(checkpoint))[0] + '_student'
    os.makedirs(out_dir, exist_ok=True)
    ckpt_path = osp.join(out_dir, f'{name}.pth')
    cfg_path = osp.join(out_dir, f'{name}.py')
    torch.save(exported, ckpt_path)
    plain_cfg.dump(cfg_path)
    return ckpt_path, cfg_path, dropped
