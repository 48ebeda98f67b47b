"""The C allocator settings of a process that runs block tasks.

A block task allocates the same large arrays again and again: the network's float32 output
(128 MiB for a default block), the stored voxels, the pooled levels, and many slabs of a
megabyte or less while finishing them. glibc gives every allocation of 128 KiB or more its
own ``mmap`` and returns it on ``free``, and Dask's nanny starts workers with
``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes that threshold: so every slab is mapped,
faulted in page by page, zeroed by the kernel and unmapped again. On this CPU that was about
40 % of the time spent finishing a block (benchmarks/bench_write.py, docs/PERFORMANCE.md).

:func:`tune_allocator` raises the mmap threshold to its maximum (32 MiB), turns ``mmap``
off for the main heap and lets up to :data:`KEEP_BYTES` of freed memory stay with the
process, so the slabs, pooled arrays and the network's output are reused without page
faults. It changes glibc's settings through ``mallopt``, once per process, and does nothing
where the C library is not glibc.

That reaches the main heap only. A task runs in a worker thread, and a thread's own glibc
arena cannot hold an allocation over 64 MiB: it maps and unmaps the network's output for
every block whatever the settings (about 60 ms of page faults a 2 x 4096 x 4096 block). The
worker processes this tool starts (``--cluster local``, ``cuda`` and ``slurm``: its job
script exports it) therefore get :data:`WORKER_ENVIRON`: every thread allocates from the main
heap. Engine-only steady state,
benchmarks/bench_write.py: 162-167 instead of 111-117 output Mvoxel per CPU second, peak
worker memory 0.86-1.10 instead of 0.88-0.90 GiB (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import ctypes
import functools

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's upper limit on 64-bit systems
KEEP_BYTES = 1 << 30  # freed memory kept for reuse before it is returned to the system
WORKER_ENVIRON = {"MALLOC_ARENA_MAX": "1"}  # read by glibc as a worker process starts


@functools.cache
def tune_allocator() -> bool:
    """Apply the settings above to this process; ``True`` where glibc took them."""
    try:  # the C library already loaded into this process: no search for it on disk
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no mallopt (macOS, Windows): defaults
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)
                and mallopt(M_MMAP_MAX, 0))
