"""The allocator settings of block tasks: freed slabs are reused, not faulted in again."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import resource
import numpy as np
from pssr_volume.allocator import tune_allocator

def faults_per_slab():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):
        np.ones(1 << 20, np.uint8)  # a megabyte slab, written, then freed
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100

print(faults_per_slab(), tune_allocator(), tune_allocator(), faults_per_slab())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt settings are glibc's")
def test_block_tasks_reuse_freed_slabs_under_dasks_trim_setting():
    # Dask's nanny starts workers with this setting: every megabyte slab is a new mapping
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    before, took, again, after = float(out[0]), out[1], out[2], float(out[3])
    assert before > 200  # 256 pages of 4 KiB faulted in for each slab
    assert took == again == "True"
    assert after < before / 20
