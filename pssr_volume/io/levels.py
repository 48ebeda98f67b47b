"""Reading and writing regions of an output's level arrays, through tensorstore.

The driver creates the arrays and their NGFF metadata (:mod:`pssr_volume.io.ome_zarr`);
tasks on the workers only write whole chunks (or whole shards) of the regions they own,
and later pyramid stages read a level back. tensorstore encodes and compresses the
chunks of a write on its own thread pool, off the Python interpreter, which measured
about 3x faster than zarr-python on sharded arrays here (docs/PERFORMANCE.md). It reads
the same zarr v3 (NGFF 0.5, sharded or not) and zarr v2 (NGFF 0.4) arrays that
zarr-python wrote.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorstore as ts

Box = tuple[tuple[int, int], ...]


def _metadata(path: str, level: str) -> Path:
    folder = Path(path) / level
    v3 = folder / "zarr.json"
    return v3 if v3.is_file() else folder / ".zarray"


def _handle(path: str, level: str, write: bool) -> ts.TensorStore:
    # The metadata file's identity is part of the key: an output deleted and created
    # again at the same path (--overwrite) is never written through a stale handle.
    meta = _metadata(path, level)
    st = meta.stat()
    return _open(str(meta), write, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _open(meta: str, write: bool, mtime_ns: int, size: int) -> ts.TensorStore:
    del mtime_ns, size  # cache key only
    folder = Path(meta).parent
    driver = "zarr3" if meta.endswith("zarr.json") else "zarr"
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(folder)}}
    return ts.open(spec, open=True, read=True, write=write).result()


def _index(region: Box) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in region)


def start_write(path: str, level: str, region: Box, data: np.ndarray) -> ts.WriteFutures:
    """Begin writing ``data`` at ``region`` of a level; ``.result()`` waits until it is
    on disk. Regions are whole chunks (whole shards where the array is sharded)."""
    return _handle(path, level, True)[_index(region)].write(data)


def write_all(writes: Sequence[ts.WriteFutures]) -> None:
    """Wait for every write in ``writes`` to be committed (raises the first failure)."""
    for w in writes:
        w.result()


def read_region(path: str, level: str, region: Box) -> np.ndarray:
    """The voxels of ``region`` of a level, as a numpy array."""
    return np.asarray(_handle(path, level, False)[_index(region)].read().result())


def forget() -> None:
    """Drop cached array handles (this process)."""
    _open.cache_clear()
