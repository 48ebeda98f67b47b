"""Project a teravoxel restoration: output bytes, files, blocks, tasks, scheduler load, hours.

A 1 Tvoxel uint8 input at 8 nm (10,000^3 voxels) restored x4 in y and x to 8 x 2 x 2 nm with
the default CPU settings (write blocks of 4096 x 4096 output voxels, as many sections as keep
the volume under 150,000 blocks: :func:`pssr_volume.task_size.cpu_block_sections`; chunks up to
8 x 256 x 256, one shard per task and level). Geometry comes from the engine's own planning
functions; rates from :mod:`pssr_volume.estimate` (measured ones cite their benchmark); the
network's FLOPs are counted on the bundled model; the driver's cost per task is measured by
benchmarks/bench_scale.py. Usage::

    python docs/teravoxel_projection.py            # prints a Markdown table
"""

from __future__ import annotations

import math

from pssr_volume.blocks import BlockGrid, default_chunk
from pssr_volume.bundled import bundled_model_path
from pssr_volume.estimate import CPU_GFLOPS_PER_CORE, ENGINE_MVOX_PER_CORE, GPU_GFLOPS
from pssr_volume.model import model_info, network_cost
from pssr_volume.plan import DEFAULT_BLOCK_YX
from pssr_volume.pyramid import plan_levels, plan_stages, shard_shapes, task_regions
from pssr_volume.task_size import cpu_block_sections

SHAPE_IN = (10_000, 10_000, 10_000)
VOXEL_IN = (8.0, 8.0, 8.0)
# the driver's process (engine, Dask client and scheduler), CPU seconds per block task with
# 256 simulated GPU workers, which it kept 92.3 % busy at 171 tasks/s (1.37 s tasks):
# python benchmarks/bench_scale.py --workers 8 64 256 --unbatched (benchmarks/results/
# scale-gpu-sim.json)
DRIVER_S_PER_TASK = 1.78e-3


def main() -> None:
    info = model_info(bundled_model_path())  # the engine's default halo and grid for it
    (halo_y, halo_x), scale = info.default_halo, info.config.scale
    z = cpu_block_sections(SHAPE_IN, scale, DEFAULT_BLOCK_YX)
    block = (z, DEFAULT_BLOCK_YX, DEFAULT_BLOCK_YX)
    chunk = default_chunk(block)
    grid = BlockGrid(SHAPE_IN, scale, block, (0, halo_y, halo_x), info.grid)
    out_voxel = (VOXEL_IN[0], VOXEL_IN[1] / scale, VOXEL_IN[2] / scale)
    levels = plan_levels(grid.out_shape, out_voxel, None)
    stages = plan_stages(levels, block, chunk)
    shards = shard_shapes(levels, stages, chunk)
    blocks = math.prod(grid.counts)
    pyramid_tasks = sum(len(task_regions(levels[st.first].shape, st.task)) for st in stages[1:])
    voxels = [math.prod(lv.shape) for lv in levels]
    shard_files = [math.prod(math.ceil(n / s) for n, s in zip(lv.shape, sh))
                   for lv, sh in zip(levels, shards)]
    chunk_files = [math.prod(math.ceil(n / c) for n, c in zip(lv.shape, chunk)) for lv in levels]
    core = (block[1] // scale, block[2] // scale)
    halo_factor = math.prod((c + 2 * h) / c for c, h in zip(core, (halo_y, halo_x)))
    gflop = network_cost(info)
    network_gflop = gflop * voxels[0] / 1e6 * halo_factor
    tasks = blocks + pyramid_tasks
    rows = [
        ("input", f"{math.prod(SHAPE_IN) / 1e12:g} Tvoxel, uint8, 8 nm"),
        ("output level 0", f"{'x'.join(map(str, levels[0].shape))} at 8 x 2 x 2 nm: "
                           f"{voxels[0] / 1e12:.1f} TB uncompressed"),
        ("output, all levels", f"{len(levels)} levels, {sum(voxels) / 1e12:.1f} TB uncompressed "
                               f"({sum(voxels) / math.prod(SHAPE_IN):.1f}x the input)"),
        ("write blocks", f"{blocks:,} of {'x'.join(map(str, block))}"),
        ("tasks", f"{tasks:,} ({blocks:,} blocks + {pyramid_tasks:,} later pyramid tasks)"),
        ("files, sharded (default)", f"{sum(shard_files):,} data files "
                                     f"({shard_files[0]:,} at level 0)"),
        ("files, one per chunk (NGFF 0.4)", f"{sum(chunk_files):,} data files"),
        ("driver and scheduler", f"{tasks * DRIVER_S_PER_TASK / 60:.1f} CPU-minutes at "
                                 f"{DRIVER_S_PER_TASK * 1e3:.2f} ms per task (measured with 256 "
                                 "simulated GPU workers, 92 % busy: bench_scale.py)"),
        ("network compute", f"{gflop:.1f} GFLOP per output Mpx x {halo_factor:.3f} (halo) = "
                            f"{network_gflop / 1e6:.3g} PFLOP"),
        ("engine, CPU", f"{voxels[0] / 1e6 / ENGINE_MVOX_PER_CORE / 3600:,.0f} core-hours at "
                        f"{ENGINE_MVOX_PER_CORE:g} output Mvoxel/s per core (measured)"),
        ("network, CPU", f"{network_gflop / CPU_GFLOPS_PER_CORE / 3600:,.0f} core-hours at "
                         f"{CPU_GFLOPS_PER_CORE:g} GFLOP/s per core (measured)"),
        ("network, GPU", f"{network_gflop / GPU_GFLOPS / 3600:,.1f} GPU-hours at "
                         f"{GPU_GFLOPS / 1000:g} TFLOP/s (30 % of an H100's FP32 peak; stated)"),
    ]
    print("| quantity | projection |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
