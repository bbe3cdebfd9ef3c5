# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Smoke tests of the benchmark scripts: they run, and the ratios they print are the ratios
of the numbers they print (the timings themselves are not tested)."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUMBER = r'([0-9.]+)'


def run(script, *args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, os.path.join(REPO, 'tools/analysis_tools', script),
                          *args], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def rows_of(stdout, first_word):
    """The table lines that start with ``first_word``."""
    lines = [line for line in stdout.splitlines() if line.split()[:1] == [first_word]]
    assert lines, stdout
    return lines


def assert_ratio(printed, numerator, denominator, digits=0.05):
    """``printed`` is numerator / denominator of two values printed to ``digits``."""
    bound = printed * (digits / numerator + digits / denominator) + 1e-3
    assert abs(printed - numerator / denominator) <= bound


def test_distill_step_benchmark_tables():
    stdout = run('benchmark_distill_step.py', '--repeat', '1', '--models', 'pspnet',
                 '--memory')
    steps, validation, memory = rows_of(stdout, 'pspnet')
    values = [float(v) for v in re.findall(NUMBER, steps)]
    (student, teacher, folded, joint, mmdist, naive, over_st, over_sf, over_joint,
     over_naive) = values
    assert min(student, teacher, folded, joint, mmdist, naive) > 0
    assert_ratio(over_st, mmdist, student + teacher)
    assert_ratio(over_sf, mmdist, student + folded)
    assert_ratio(over_joint, mmdist, joint)
    assert_ratio(over_naive, mmdist, naive)
    plain, paired, ratio = [float(v) for v in re.findall(NUMBER, validation)]
    assert_ratio(ratio, paired, plain)
    peaks = [float(v) for v in re.findall(NUMBER, memory)]
    assert len(peaks) == 8 and peaks[0] > 0 and peaks[4] > 0  # student, mmdist steps
    assert_ratio(peaks[6], peaks[4], peaks[0])
    assert_ratio(peaks[7], peaks[4], peaks[3])  # mmdist / joint


def test_dist_loss_benchmark_checks_values_and_prints_ratios():
    """The (N, C) Cityscapes-scale matrices and the same logits as (B, C, H, W) maps."""
    stdout = run('benchmark_dist_loss.py', '--repeat', '1', '--scales', 'cityscapes',
                 'cityscapes_maps')
    rows = rows_of(stdout, 'cityscapes') + rows_of(stdout, 'cityscapes_maps')
    assert len(rows) == 2
    for row in rows:
        assert 'softmax' in row
        numbers = [float(v) for v in re.findall(r'([0-9.]+(?:e[-+][0-9]+)?)', row)]
        assert numbers[:2] == [65536, 19]
        value_diff, grad_diff = numbers[2:4]  # |dL| and the relative gradient difference
        assert value_diff <= 1e-5 and grad_diff < 1e-4
        t_ref, t_ours, speedup, m_ref, m_ours, m_ratio = numbers[4:10]
        assert_ratio(speedup, t_ref, t_ours, digits=0.5)  # whole ms
        assert_ratio(m_ratio, m_ours, m_ref, digits=0.5)  # whole MB
