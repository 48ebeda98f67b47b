"""A block's finishing pass as one compiled loop (numba), for the case the default runs take.

:func:`pssr_volume.stored_voxels.stored_voxels` maps the network's float32 output back to grey
levels, rounds and clips it, pools it into the next pyramid level and sums it over the input
grid's cells, slab by slab in numpy: each slab is read and written by some ten array
operations. Here each pair of rows goes through one loop instead: ~18 instead of ~45 ms of CPU
for a 2 x 4096 x 4096 block on the test machine, where a plain sum over the float32 output
alone takes 12; voxels already rounded on a GPU are pooled and summed in ~10 instead of ~45
(docs/PERFORMANCE.md, "One block computes while another commits").

It covers integer voxels of up to 16 bits (whose arithmetic is float32), a next level pooled
1 x 2 x 2 or none, even cells (``scale`` 2, 4, 8...) or none, and even y and x sizes;
:func:`finish` returns ``None`` for anything else, which stays on the numpy path. The bytes
are the numpy path's (tests/test_fused_finish.py): the float32 multiply and add stay two
roundings (no fastmath, so no fused multiply-add), ``rint`` rounds half to even as numpy's
does, NaN becomes 0 as numpy's cast makes it, the pooled means round half up, and the cell
sums are exact in the same integer type.

The loop is compiled once per process and output type and kept in numba's on-disk cache
(next to this module, or in the user's cache folder where that is read-only, or in the folder
``NUMBA_CACHE_DIR`` names; with none writable, each process compiles it, about 1.5 s).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from pssr_volume.consistency import cell_sum_type
from pssr_volume.types import Shape3

FUSED_TYPES = frozenset({"uint8", "int8", "uint16", "int16"})


def applies(shape: tuple[int, ...], dtype: np.dtype, factors: Shape3 | None, cell: int) -> bool:
    """Whether :func:`finish` takes a block of ``shape`` (z, y, x) to ``dtype`` with these
    pooling ``factors`` and ``cell``."""
    pooling = factors is not None or cell > 0
    return (dtype.name in FUSED_TYPES and len(shape) == 3
            and factors in (None, (1, 2, 2)) and cell % 2 == 0
            and (not pooling or (shape[1] % 2 == 0 and shape[2] % 2 == 0))
            and (cell == 0 or (shape[1] % cell == 0 and shape[2] % cell == 0)))


def finish(values: np.ndarray, lo: float, hi: float, dtype: np.dtype, factors: Shape3 | None,
           cell: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """``values`` (z, y, x, float32) as stored voxels of ``dtype``, those pooled 1 x 2 x 2
    (with ``factors``) and their sums over each ``cell`` x ``cell`` square (``cell`` > 0),
    as :func:`pssr_volume.stored_voxels.stored_voxels` makes them; ``values`` already of
    ``dtype`` (rounded on a GPU) are pooled and summed as they are. ``None`` where this loop
    does not apply (:func:`applies`) or ``values`` is not float32 with contiguous rows."""
    done = values.dtype == dtype
    if (not (done or values.dtype == np.float32) or values.ndim != 3 or values.size == 0
            or values.strides[2] != values.itemsize
            or any(s < 0 or s % values.itemsize for s in values.strides)
            or not applies(values.shape, dtype, factors, cell)
            or (done and factors is None and not cell)):
        return None
    nz, ny, nx = values.shape
    info = np.iinfo(dtype)
    out = np.ascontiguousarray(values) if done else np.empty(values.shape, dtype)
    pool, half = factors is not None, cell // 2
    pooled = np.empty((nz, ny // 2, nx // 2) if pool else (0, 0, 0), dtype)
    sum_type = cell_sum_type(dtype, cell) if cell else np.dtype(np.int64)
    sums = np.empty((nz, ny // cell, nx // cell) if cell else (0, 0, 0), sum_type)
    pair_type = cell_sum_type(dtype, 2) if (pool or cell) else np.dtype(np.int64)
    assert pair_type is not None and sum_type is not None  # integers of 16 bits at most
    pair = np.empty(nx // 2, pair_type)
    band = np.empty(nx // 2, sum_type)
    rows = np.empty(0, np.float32) if done else _rows_of(values)
    _compiled()(rows, values.strides[0] // values.itemsize, values.strides[1] // values.itemsize,
                values.shape, not done, np.float32(hi - lo), np.float32(lo), np.float32(info.min),
                np.float32(info.max), out, pool, pooled, half, sums, pair, band)
    return out, (pooled if pool else None), (sums if cell else None)


def _rows_of(values: np.ndarray) -> np.ndarray:
    """The float32 memory ``values`` spans, as one flat read-only array: numba compiles a
    loop over a row of a strided array (a cropped view) without SIMD, ~3x slower, and over
    a slice of a flat array with it."""
    if values.flags.c_contiguous:
        return values.reshape(-1)
    nz, ny, nx = values.shape
    span = (nz - 1) * (values.strides[0] // 4) + (ny - 1) * (values.strides[1] // 4) + nx
    return np.lib.stride_tricks.as_strided(values, shape=(span,), strides=(4,),
                                           writeable=False)


@functools.cache
def _compiled() -> Callable[..., Any]:
    import numba  # half a second: imported where blocks are finished, not where runs are planned

    try:
        return numba.njit(cache=True, nogil=True)(_finish_rows)
    except RuntimeError:  # no writable cache folder (a read-only install and home): compile
        return numba.njit(nogil=True)(_finish_rows)  # in each process instead (~1.5 s)


def _finish_rows(rows, z_step, y_step, shape, convert, scale, offset, lo, hi, out, pool, pooled,
                 half, sums, pair, band):
    nz, ny, nx = shape
    pairs = pool or half > 0
    step = 2 if pairs else 1
    for z in range(nz):
        for y in range(0, ny, step):
            for r in range(y, min(y + step, ny) if convert else y):
                start = z * z_step + r * y_step
                src, dst = rows[start : start + nx], out[z, r]
                for x in range(nx):
                    v = np.rint(src[x] * scale + offset)
                    v = v if v == v else np.float32(0.0)  # NaN: 0, as numpy's cast gives
                    dst[x] = min(max(v, lo), hi)
            if not pairs:
                continue
            top, bottom = out[z, y], out[z, y + 1]
            for i in range(nx // 2):
                pair[i] = top[2 * i] + top[2 * i + 1] + bottom[2 * i] + bottom[2 * i + 1]
            if pool:
                means = pooled[z, y // 2]
                for i in range(nx // 2):
                    means[i] = (pair[i] + 2) >> 2  # the mean of four, rounded half up
            if half > 0:
                k = (y // 2) % half
                if k == 0:
                    for i in range(nx // 2):
                        band[i] = pair[i]
                else:
                    for i in range(nx // 2):
                        band[i] += pair[i]
                if k == half - 1:
                    cells = sums[z, y // (2 * half)]
                    for j in range(nx // (2 * half)):
                        cells[j] = band[j * half]
                    for t in range(1, half):
                        for j in range(nx // (2 * half)):
                            cells[j] += band[j * half + t]
