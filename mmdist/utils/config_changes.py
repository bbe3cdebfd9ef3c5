# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Settings that differ between a resumed run's config and the config its checkpoint
stored (``meta['cfg']``, mmengine's ``Config.pretty_text``), and what resuming does with
each of them.

The stored text is read without executing it (:func:`read_config_text`): only literals,
``dict(...)``, lists and tuples; an entry holding anything else (e.g. a class in a lazy
config) is :data:`UNREADABLE` and not compared.
"""
import ast
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

#: Top-level config entries compared on resume.
COMPARED = ('train_cfg', 'optim_wrapper', 'param_scheduler', 'train_dataloader', 'model')


class _Unreadable:

    def __repr__(self) -> str:
        return 'UNREADABLE'


#: :func:`read_config_text`'s value of an entry that is not made of literals.
UNREADABLE = _Unreadable()


class ConfigChange(NamedTuple):
    """A setting of the resumed config that differs from the checkpoint's."""
    key: str
    stored: Any
    current: Any
    #: what resuming does with the new value
    effect: str

    def describe(self) -> str:
        return f'{self.key}: {self.stored!r} -> {self.current!r}: {self.effect}'


def _literal(node: ast.AST) -> Any:
    """The value of a config expression made of literals, ``dict(...)``, lists, tuples."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and not node.args:
        if any(keyword.arg is None for keyword in node.keywords):
            raise ValueError('dict(**...)')
        return {keyword.arg: _literal(keyword.value) for keyword in node.keywords}
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise ValueError('{**...}')
        return {_literal(key): _literal(value) for key, value in zip(node.keys, node.values)}
    if isinstance(node, ast.List):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(item) for item in node.elts)
    return ast.literal_eval(node)


def read_config_text(text: str) -> Dict[str, Any]:
    """The top-level ``name = value`` entries of a config text, read without running it.

    An entry whose value is not made of literals, ``dict(...)``, lists and tuples (a lambda,
    a function call, a name) is :data:`UNREADABLE`.

    Raises:
        SyntaxError: ``text`` is not Python.
    """
    entries = {}
    for statement in ast.parse(text).body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and \
                isinstance(statement.targets[0], ast.Name):
            try:
                entries[statement.targets[0].id] = _literal(statement.value)
            except (ValueError, TypeError, SyntaxError):
                entries[statement.targets[0].id] = UNREADABLE
    return entries


def flatten(value: Any, key: str) -> Dict[str, Any]:
    """``{'a.b': 1, 'a.c[0].d': 2}`` for ``a = dict(b=1, c=[dict(d=2)])``; tuples become
    lists (the same value either way in a config)."""
    if isinstance(value, Mapping):
        flat = {}
        for name, item in value.items():
            flat.update(flatten(item, f'{key}.{name}'))
        return flat
    if isinstance(value, (list, tuple)):
        if any(isinstance(item, (Mapping, list, tuple)) for item in value):
            flat = {}
            for index, item in enumerate(value):
                flat.update(flatten(item, f'{key}[{index}]'))
            return flat
        return {key: list(value)}
    return {key: value}


def _parts(key: str) -> List[str]:
    return key.replace('[', '.[').split('.')


def resume_effect(key: str, position: str) -> Optional[str]:
    """What resuming at ``position`` (e.g. ``'iteration 2'``) does with a changed ``key``;
    None for settings that are not compared."""
    kept = ('not used: resuming restores the {} saved in the checkpoint, with the old value '
            '(to train with the new one, start a new run from the checkpoint with load_from)')
    if key in ('train_cfg.max_iters', 'train_cfg.max_epochs'):
        return ('training ends at the new value; param_scheduler is resumed as the checkpoint '
                'saved it (its `end` included), not rebuilt for the new length')
    if key.startswith(('optim_wrapper.optimizer.', 'optim_wrapper.paramwise_cfg')):
        return kept.format("optimizer state (each parameter group's hyperparameters)")
    if key.startswith('param_scheduler'):
        return kept.format('parameter schedulers\' state')
    if key.startswith('optim_wrapper.') or key == 'train_dataloader.batch_size' or (
            key.startswith('model.') and any(part.startswith('loss') for part in _parts(key))):
        return f'applies after {position}; up to it the run trained with the old value'
    return None


def resume_config_changes(stored: Mapping[str, Any], current: Mapping[str, Any],
                          position: str) -> List[ConfigChange]:
    """The compared settings (:func:`resume_effect`) that differ between the checkpoint's
    config ``stored`` and the resumed run's ``current`` (both plain dicts); a setting
    missing on one side is ``None`` there. :data:`UNREADABLE` entries are skipped."""
    changes = []
    for entry in COMPARED:
        if stored.get(entry) is UNREADABLE:
            continue
        old = flatten(stored.get(entry), entry)
        new = flatten(current.get(entry), entry)
        for key in sorted(set(old) | set(new)):
            if old.get(key) == new.get(key):
                continue
            effect = resume_effect(key, position)
            if effect is not None:
                changes.append(ConfigChange(key, old.get(key), new.get(key), effect))
    return changes
