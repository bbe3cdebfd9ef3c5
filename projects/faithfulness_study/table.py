# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The study's results table: one row per trained model, the columns of its study.

Values are the measured ones, scaled to percent; a metric the run does not report (the
teacher has no agreement with itself) is ``—``, a class with no pixels ``nan``. With
several seeds every run has its own row and a ``mean`` row follows each variant.
"""
import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence

from .variants import Study


@dataclass
class RunRow:
    """One evaluated model of a study."""

    variant: str
    label: str
    seed: int
    metrics: Dict[str, float]
    train_seconds: float = 0.0
    test_seconds: float = 0.0
    cached: bool = False

    def to_json(self) -> Dict:
        return asdict(self)


def _mean_row(rows: Sequence[RunRow]) -> RunRow:
    keys = set.intersection(*(set(r.metrics) for r in rows))
    metrics = {}
    for key in keys:
        values = [r.metrics[key] for r in rows if not math.isnan(r.metrics[key])]
        metrics[key] = sum(values) / len(values) if values else math.nan
    return RunRow(rows[0].variant, rows[0].label, -1, metrics)


def table_rows(study: Study, rows: Sequence[RunRow]) -> List[RunRow]:
    """Rows in table order, with a mean row after each variant run with several seeds."""
    ordered: List[RunRow] = []
    for name in dict.fromkeys(r.variant for r in rows):
        runs = sorted((r for r in rows if r.variant == name), key=lambda r: r.seed)
        ordered.extend(runs)
        if len(runs) > 1:
            ordered.append(_mean_row(runs))
    return ordered


def _cell(study: Study, row: RunRow, index: int) -> str:
    column = study.columns[index]
    if column.key not in row.metrics:
        return '—'
    value = row.metrics[column.key] * column.scale
    return 'nan' if math.isnan(value) else f'{value:.2f}'


def markdown_table(study: Study, rows: Sequence[RunRow]) -> List[str]:
    """The table as markdown lines (model, seed, then the study's columns)."""
    header = ['model', 'seed'] + [c.label for c in study.columns]
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join([' --- '] * 2 + [' ---: '] * len(study.columns)) + '|']
    for row in table_rows(study, rows):
        seed = 'mean' if row.seed < 0 else str(row.seed)
        cells = [row.label, seed] + [_cell(study, row, i) for i in range(len(study.columns))]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines
