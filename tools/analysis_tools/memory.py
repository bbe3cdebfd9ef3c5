# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Peak resident memory of a call, for the CPU benchmarks (Linux ``/proc``).

Run it in a fresh process with ``MALLOC_MMAP_THRESHOLD_=65536`` in the environment: glibc
then returns every freed block above 64 KiB to the OS at once, so the resident set
follows the live tensors instead of the allocator's cache.
"""
import os
from typing import Callable


def resident_bytes() -> int:
    """The process's resident set size now."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def extra_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak resident memory while ``fn()`` runs, above the resident memory before it."""
    before = resident_bytes()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset the peak resident set size ("VmHWM") to the current RSS
    fn()
    with open('/proc/self/status') as f:
        peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmHWM'))
    return max(peak - before, 0)
