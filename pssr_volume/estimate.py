"""What a planned run will cost: tasks, output bytes and files, network FLOPs, hours.

``pssr-volume run --dry-run`` prints this and writes nothing; docs/PERFORMANCE.md uses
the same arithmetic for its teravoxel projection. The rates are stated, with where each
comes from; the network's FLOPs are counted on the model itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pssr_volume.blend import reach
from pssr_volume.gpus import EFFICIENCY, Gpu, gpu_named
from pssr_volume.plan import Plan, model_cost
from pssr_volume.pyramid import task_count

# Network throughput per CPU core: the bundled model's raw forward pass measured 3.1 output
# Mpx/s on 2 cores at 29.7 GFLOP per output Mpx (docs/PERFORMANCE.md): about 46 GFLOP/s.
CPU_GFLOPS_PER_CORE = 46.0
# Network throughput per GPU: an H100/H200 in FP32 (TF32 off, for reproducible bytes) at a
# stated 30 % of its 67 TFLOP/s peak; not yet measured on this project's code.
GPU_GFLOPS = gpu_named(None).gflops  # the default planning GPU (pssr_volume.gpus)
# The engine's own work per CPU core (read, normalise, round, chunks, codec, pyramid, the
# consistency figure) with a stand-in model that costs almost nothing, in the steady state:
# 150-189 output Mvoxel per CPU second, benchmarks/bench_write.py (docs/PERFORMANCE.md).
ENGINE_MVOX_PER_CORE = 165.0


@dataclass(frozen=True)
class Estimate:
    """The cost of a planned run."""

    blocks: int
    pyramid_tasks: int
    tasks: int
    level_shapes: tuple[tuple[int, int, int], ...]
    level_bytes: tuple[int, ...]  # uncompressed
    level_files: tuple[int, ...]  # data files (chunks, or shards where sharded)
    gflop_per_out_mpx: float
    computed_mpx: float  # output pixels the network computes, halos included
    network_gflop: float
    itemsize: int
    gpu: Gpu = gpu_named(None)  # what GPU-hours are counted on

    @property
    def output_bytes(self) -> int:
        return sum(self.level_bytes)

    @property
    def files(self) -> int:
        return sum(self.level_files)

    def cpu_core_hours(self) -> float:
        """Core-hours of network compute on CPUs at :data:`CPU_GFLOPS_PER_CORE`."""
        return self.network_gflop / CPU_GFLOPS_PER_CORE / 3600

    def gpu_hours(self) -> float:
        """GPU-hours of network compute on :attr:`gpu` at its planning rate."""
        return self.network_gflop / self.gpu.gflops / 3600

    def block_gpu_seconds(self) -> float:
        """Network seconds of one block task on :attr:`gpu` (the mean over blocks)."""
        return self.network_gflop / self.gpu.gflops / max(self.blocks, 1)

    def engine_core_hours(self) -> float:
        """Core-hours of the engine's own work at :data:`ENGINE_MVOX_PER_CORE`."""
        return self.level_bytes[0] / self.itemsize / 1e6 / ENGINE_MVOX_PER_CORE / 3600


def estimate(plan: Plan) -> Estimate:
    """Count what ``plan`` will do, without doing it."""
    job = plan.job
    grid, s = job.grid, job.grid.scale
    itemsize = np.dtype(job.dtype).itemsize
    pyramid = sum(task_count(job.levels[st.first].shape, st.task) for st in job.stages[1:])
    tasks = len(grid)
    if job.blend != "crop":  # a prediction, a piece for each neighbour, a write per block
        r = reach(job.blend, grid.block[1:], (grid.halo[1] * s, grid.halo[2] * s))
        tasks = 2 * len(grid) + sum(len(grid.neighbours(i, r)) for i in grid.indices())
    shapes = tuple(lv.shape for lv in job.levels)
    layout = plan.layout.shards or tuple(job.chunk for _ in shapes)
    files = tuple(math.prod(math.ceil(n / c) for n, c in zip(shape, unit))
                  for shape, unit in zip(shapes, layout))
    # output pixels the network computes: per axis, the sum over blocks of what it predicts
    sums = []
    for axis in range(3):
        total = 0
        for i in range(grid.counts[axis]):
            index = tuple(i if a == axis else 0 for a in range(3))
            block = grid.block_at(index)  # type: ignore[arg-type]
            a, b = block.write[0] if axis == 0 else block.tile[axis]
            total += (b - a) * (1 if axis == 0 else s)
        sums.append(total)
    computed = math.prod(sums) / 1e6
    g = 0.0 if plan.model is None else model_cost(plan.model)  # a copy runs no network
    return Estimate(
        blocks=len(grid), pyramid_tasks=pyramid, tasks=tasks + pyramid,
        level_shapes=shapes, level_bytes=tuple(math.prod(x) * itemsize for x in shapes),
        level_files=files, gflop_per_out_mpx=g, computed_mpx=computed,
        network_gflop=g * computed, itemsize=itemsize, gpu=plan.gpu or gpu_named(None),
    )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def describe(est: Estimate) -> list[str]:
    """The estimate as lines for the terminal."""
    lines = [f"tasks   {est.blocks} block(s), {est.pyramid_tasks} later pyramid task(s), "
             f"{est.tasks} Dask task(s) in all"]
    for k, (shape, size, files) in enumerate(zip(est.level_shapes, est.level_bytes,
                                                 est.level_files)):
        lines.append(f"level {k} {'x'.join(map(str, shape))}: {_size(size)} uncompressed, "
                     f"{files} data file(s)")
    lines.append(f"output  {_size(est.output_bytes)} uncompressed in {est.files} data file(s) "
                 "(plus metadata)")
    if est.network_gflop == 0:  # a copy: no network
        return lines
    lines += [
        f"network {est.gflop_per_out_mpx:.1f} GFLOP per output Mpx x {est.computed_mpx:.4g} Mpx "
        f"(halos included) = {est.network_gflop:.4g} GFLOP",
        f"time    network: {est.cpu_core_hours():.3g} CPU core-hours at "
        f"{CPU_GFLOPS_PER_CORE:g} GFLOP/s per core, or {est.gpu_hours():.3g} GPU-hours on "
        f"{est.gpu.name} at {est.gpu.gflops / 1000:.3g} TFLOP/s ({EFFICIENCY:.0%} of its "
        f"FP32 peak; {est.block_gpu_seconds():.2g} s a block task); "
        f"engine: {est.engine_core_hours():.3g} core-hours at "
        f"{ENGINE_MVOX_PER_CORE:g} output Mvoxel/s per core",
    ]
    return lines
