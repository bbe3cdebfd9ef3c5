# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Smoke tests of the benchmark scripts: they run, and the ratios they print are the ratios
of the numbers they print (the timings themselves are not tested)."""
import os
import re
import subprocess
import sys


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


def assert_ratio(printed, numerator, denominator, digits=0.05, ratio_digits=0.0005,
                 denominator_terms=1):
    """``printed`` (rounded to ``ratio_digits``) is numerator / denominator, the numerator
    one printed value and the denominator a sum of ``denominator_terms`` printed values,
    each rounded to ``digits``."""
    errors = digits / numerator + denominator_terms * digits / denominator
    bound = printed * errors + ratio_digits + 1e-9
    assert abs(printed - numerator / denominator) <= bound


def test_distill_step_benchmark_tables():
    stdout = run('benchmark_distill_step.py', '--repeat', '1', '--models', 'pspnet',
                 '--memory')
    steps, validation, memory = rows_of(stdout, 'pspnet')
    values = [float(v) for v in re.findall(NUMBER, steps)]
    (student, teacher, folded, joint, mmdist, naive, over_st, over_sf, over_joint,
     over_naive) = values
    assert min(student, teacher, folded, joint, mmdist, naive) > 0
    assert_ratio(over_st, mmdist, student + teacher, denominator_terms=2)
    assert_ratio(over_sf, mmdist, student + folded, denominator_terms=2)
    assert_ratio(over_joint, mmdist, joint)
    assert_ratio(over_naive, mmdist, naive)
    plain, paired, ratio = [float(v) for v in re.findall(NUMBER, validation)]
    assert_ratio(ratio, paired, plain)
    peaks = [float(v) for v in re.findall(NUMBER, memory)]
    assert len(peaks) == 8 and peaks[0] > 0 and peaks[4] > 0  # student, mmdist steps
    assert_ratio(peaks[6], peaks[4], peaks[0])
    assert_ratio(peaks[7], peaks[4], peaks[3])  # mmdist / joint


def test_distill_step_benchmark_cross_head_part():
    """The cross-head model prints its step table row and the time of its cross-head part
    (adapters and the teacher's classifier, forward and backward) as a share of the step."""
    stdout = run('benchmark_distill_step.py', '--repeat', '1', '--models', 'crosshead')
    steps, _ = rows_of(stdout, 'crosshead')
    values = [float(v) for v in re.findall(NUMBER, steps)]
    mmdist = values[4]
    (part, ) = [line for line in stdout.splitlines() if line.strip().startswith('cross-head')]
    part_ms, share = [float(v) for v in re.findall(NUMBER, part.split('part', 1)[1])]
    assert 0 < part_ms < mmdist
    assert_ratio(share, part_ms, mmdist)


def test_distill_step_benchmark_dino():
    """The DINO pair runs every variant, the naive one through the teacher's loss() in
    training mode (denoising queries, matcher) and the query unit."""
    stdout = run('benchmark_distill_step.py', '--repeat', '1', '--models', 'dino')
    steps, _ = rows_of(stdout, 'dino')
    values = [float(v) for v in re.findall(NUMBER, steps)]
    student, teacher, mmdist, naive, over_st = (values[i] for i in (0, 1, 4, 5, 6))
    assert min(student, teacher, mmdist, naive) > 0
    assert_ratio(over_st, mmdist, student + teacher, denominator_terms=2)


def test_dist_loss_benchmark_checks_values_and_prints_ratios():
    """The RoI-scale matrices (the suite runs mmdist eagerly: MMDIST_COMPILE=0; the
    official formulation is compiled all the same)."""
    stdout = run('benchmark_dist_loss.py', '--repeat', '1', '--scales', 'roi')
    (row, ) = rows_of(stdout, 'roi')
    assert 'softmax' in row
    numbers = [float(v) for v in re.findall(r'([0-9.]+(?:e[-+][0-9]+)?)', row)]
    assert numbers[:2] == [1024, 81]
    value_diff, grad_diff = numbers[2:4]  # |dL| and the relative gradient difference
    assert value_diff <= 1e-5 and grad_diff < 1e-4
    official, official_compiled, mmdist, mmdist_eager = numbers[4:8]
    speedup, compiled_speedup, m_ref, m_ours, m_ratio = numbers[8:13]
    assert min(official, official_compiled, mmdist, mmdist_eager) > 0
    # ms and ratios printed to 2 decimals, MB to 1
    assert_ratio(speedup, official, mmdist, digits=0.005, ratio_digits=0.005)
    assert_ratio(compiled_speedup, official_compiled, mmdist, digits=0.005, ratio_digits=0.005)
    assert_ratio(m_ratio, m_ours, m_ref, digits=0.05, ratio_digits=0.005)
