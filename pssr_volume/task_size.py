"""How big a block task is by default: by the device it runs on and the network's cost.

On a CPU the default is 2 sections, thickened (doubling, up to :data:`CPU_MAX_Z`) only where a
volume would otherwise need more than :data:`MAX_BLOCKS` blocks: each block task writes one
file per level it writes, and a 1 Tvoxel volume in 2-section blocks would need 512,000 of them
per level (8 sections: 128,000; docs/PERFORMANCE.md).

A task has a fixed cost in the driver and the scheduler (milliseconds: submitting, tracking,
journaling) next to its work. On a CPU the default block, 2 x 4096 x 4096 output voxels, is
seconds to minutes of network time, so that cost is negligible. On a GPU the same block takes
tens of milliseconds and the tasks would be scheduler work, so the GPU default is thicker in z:
the fewest sections (a multiple of :data:`GPU_Z_STEP`, the output chunk's z) whose network time
at the planned GPU's rate (:mod:`pssr_volume.gpus`) is at least :data:`GPU_TASK_SECONDS`, which
keeps a per-task cost of ~16 ms under 2 %.

Memory stays bounded whatever the thickness: the network runs over a block's sections in
batches (``--batch-size``), so GPU memory holds one batch; on a GPU each batch is rounded to
the output type there (``predict``'s on-device finish), so host memory holds the block's
input tile and its stored voxels (about 0.5 GB for 24 x 4096 x 4096 uint8), never its float
output; and, while it computes, the stored voxels of the worker's previous block, which is
committing its writes on the other task thread (:mod:`pssr_volume.compute_slot`).
"""

from __future__ import annotations

import math

from pssr_volume.gpus import Gpu

BLOCK_YX = 4096  # output voxels per side, rounded up to scale x network grid
CPU_BLOCK_Z = 2
GPU_TASK_SECONDS = 1.0
GPU_Z_STEP = 8
GPU_MAX_Z = 128
MAX_BLOCKS = 150_000
CPU_MAX_Z = 64


def cpu_block_sections(in_shape: tuple[int, int, int], scale: int, yx: int) -> int:
    """Sections per CPU block task: :data:`CPU_BLOCK_Z`, doubled while the volume would
    need more than :data:`MAX_BLOCKS` blocks of ``yx`` output voxels a side."""
    nz, ny, nx = in_shape
    per_section = math.ceil(ny * scale / yx) * math.ceil(nx * scale / yx)
    z = CPU_BLOCK_Z
    while z < CPU_MAX_Z and math.ceil(nz / z) * per_section > MAX_BLOCKS:
        z *= 2
    return z


def gpu_block_sections(gflop_per_out_mpx: float, yx: int, gpu: Gpu) -> int:
    """Sections per GPU block task: network time at least :data:`GPU_TASK_SECONDS` on
    ``gpu``, a multiple of :data:`GPU_Z_STEP`, at most :data:`GPU_MAX_Z`."""
    seconds_per_section = gflop_per_out_mpx * yx * yx / 1e6 / gpu.gflops
    if seconds_per_section <= 0:
        return GPU_MAX_Z
    z = math.ceil(GPU_TASK_SECONDS / seconds_per_section / GPU_Z_STEP) * GPU_Z_STEP
    return max(GPU_Z_STEP, min(GPU_MAX_Z, z))
