"""A block's stored voxels: its float network output as stored voxels, the first pooled
level and the cell sums the data-consistency figure degrades them back with, in one pass.

The network's float32 output is many times larger than what is stored, so the hot path
touches it once: slab by slab (a few megabytes, kept in cache), it is mapped back
to the input's grey levels, rounded and clipped (:func:`pssr_volume.intensity.denormalize`),
and the rounded slab is pooled at once into the next pyramid level
(:func:`pssr_volume.pyramid.downsample`) and summed over each ``scale x scale`` cell of the
input grid (:func:`pssr_volume.consistency.area_mean`'s sums). The bytes equal those of the
steps done one after the other on the whole block: slabs start on the pooling grid and on
the cell grid, and only the block's last slab can be partial, where the whole-block pooling
pads too.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from pssr_volume import fused_finish
from pssr_volume.consistency import cell_sum_type, integer_cell_sums
from pssr_volume.intensity import denormalize
from pssr_volume.pyramid import cell_sums, downsample, mean_of_sums
from pssr_volume.types import Shape3

SLAB_BYTES = 2 << 20  # float32 input per slab (1 MiB slabs: 4 % slower on this CPU)


class StoredVoxels(NamedTuple):
    """What :func:`stored_voxels` makes of a block."""

    data: np.ndarray  # the stored voxels (z, y, x)
    pooled: np.ndarray | None  # the next pyramid level, if any
    sums: np.ndarray | None  # the sum over each cell x cell square of ``data``, if asked


def stored_voxels(values: np.ndarray, lo: float, hi: float, dtype: str | np.dtype,
                  factors: Shape3 | None, cell: int = 0) -> StoredVoxels:
    """``values`` (z, y, x) as stored voxels; those pooled by ``factors`` (``None``: no next
    level); and, for ``cell`` > 0 and integer voxels, their exact sums over each ``cell`` x
    ``cell`` square in y and x (y and x must be multiples of ``cell``; ``None`` where they
    would not fit 64 bits)."""
    dtype = np.dtype(dtype)
    sum_type = cell_sum_type(dtype, cell) if cell else None
    cell = cell if sum_type else 0  # no exact integer sums: the caller takes the float mean
    fused = fused_finish.finish(values, lo, hi, dtype, factors, cell)
    if fused is not None:  # the common cases, as one compiled loop: the same bytes
        return StoredVoxels(*fused)
    if values.dtype == dtype and dtype.kind != "f":  # finished on the device already
        done = np.ascontiguousarray(values)
        return StoredVoxels(done, None if factors is None else downsample(done, factors),
                            integer_cell_sums(done, cell) if cell else None)
    out = np.empty(values.shape, dtype)
    if factors is None and not cell:
        return StoredVoxels(denormalize(values, lo, hi, dtype, out=out), None, None)
    fz, fy, fx = factors or (1, 1, 1)
    nz, ny, nx = values.shape
    if cell and (ny % cell or nx % cell):
        raise ValueError(f"shape {values.shape} is not a multiple of the cell {cell} in y and x")
    step = math.lcm(fy, max(cell, 1))
    rows = max(step, (SLAB_BYTES // (4 * fz * max(nx, 1))) // step * step)
    pooled = None
    if factors is not None:
        pooled = np.empty(tuple(math.ceil(n / f) for n, f in zip(values.shape, factors)), dtype)
    sums = np.empty((nz, ny // cell, nx // cell), sum_type) if cell else None
    # the cell sums from the pooled level's 2 x 2 sums, where those hold whole cells
    # (not for 32-bit voxels: their 2 x 2 sums are 64-bit, and those of 2 x 2 of them would not fit)
    pair_type = cell_sum_type(dtype, 2)
    reuse = (cell % 2 == 0 and (fz, fy, fx) == (1, 2, 2) and pair_type is not None
             and cell_sum_type(pair_type, cell // 2) is not None)
    for z in range(0, nz, fz):
        for y in range(0, ny, rows):
            part = out[z : z + fz, y : y + rows]
            denormalize(values[z : z + fz, y : y + rows], lo, hi, dtype, out=part)
            acc = None if factors is None else cell_sums(part, factors)
            if sums is not None:  # before mean_of_sums, which works in place on acc
                whole = (acc, cell // 2) if reuse else (part, cell)
                sums[z : z + fz, y // cell : (y + part.shape[1]) // cell] = (
                    integer_cell_sums(*whole))
            if pooled is not None and acc is not None:
                ys = slice(y // fy, (y + part.shape[1] + fy - 1) // fy)
                pooled[z // fz, ys] = mean_of_sums(acc, fz * fy * fx, dtype)[0]
    return StoredVoxels(out, pooled, sums)
