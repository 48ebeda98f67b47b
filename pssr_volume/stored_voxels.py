"""A block's stored voxels: its float network output as stored voxels and the first pooled
level, in one pass.

The network's float32 output is many times larger than what is stored, so the hot path
touches it once: slab by slab (a few hundred kilobytes, kept in cache), it is mapped back
to the input's grey levels, rounded and clipped (:func:`pssr_volume.intensity.denormalize`),
and the rounded slab is pooled at once into the next pyramid level
(:func:`pssr_volume.pyramid.downsample`). The bytes equal those of the two steps done on
the whole block: slabs start on the pooling grid, and only the block's last slab can be
partial, where the whole-block pooling pads too.
"""

from __future__ import annotations

import math

import numpy as np

from pssr_volume.intensity import denormalize
from pssr_volume.pyramid import downsample
from pssr_volume.types import Shape3

SLAB_BYTES = 1 << 20  # float32 input per slab


def stored_voxels(values: np.ndarray, lo: float, hi: float, dtype: str | np.dtype,
           factors: Shape3 | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(level, pooled)``: ``values`` (z, y, x) as stored voxels, and those pooled by
    ``factors`` (``None``: no next level)."""
    dtype = np.dtype(dtype)
    if values.dtype == dtype and dtype.kind != "f":  # finished on the device already
        done = np.ascontiguousarray(values)
        return done, None if factors is None else downsample(done, factors)
    out = np.empty(values.shape, dtype)
    if factors is None:
        return denormalize(values, lo, hi, dtype, out=out), None
    fz, fy, _ = factors
    nz, ny, nx = values.shape
    pooled_shape = tuple(math.ceil(n / f) for n, f in zip(values.shape, factors))
    pooled = np.empty(pooled_shape, dtype)
    rows = max(fy, (SLAB_BYTES // (4 * fz * max(nx, 1))) // fy * fy)
    for z in range(0, nz, fz):
        for y in range(0, ny, rows):
            part = out[z : z + fz, y : y + rows]
            denormalize(values[z : z + fz, y : y + rows], lo, hi, dtype, out=part)
            pooled[z // fz, y // fy : (y + part.shape[1] + fy - 1) // fy] = downsample(
                part, factors)[0]
    return out, pooled
