"""Reading and writing regions of a neuroglancer precomputed output's scales, through
tensorstore, and checking them (``verify``). The output itself is
:mod:`pssr_volume.io.precomputed`'s.

Chunks are written and read through tensorstore's ``neuroglancer_precomputed`` driver, each
task whole shards. The driver does not store a chunk whose voxels are all 0 (the format's
fill value) in a sharded scale, not even with ``store_data_equal_to_fill_value``; such chunks
are then written through tensorstore's ``neuroglancer_uint64_sharded`` key-value store (the
layer the driver itself writes through), so every chunk of a finished output is stored and
``verify`` can tell a lost shard from an empty one. The shard's bytes are the same either way
(tensorstore orders a shard's chunks by key). Chunk data and minishard indices are gzip, whose
trailer holds the CRC-32 of the data: a damaged chunk fails to decode. tensorstore reads a
chunk missing from a sharded scale as zeros, whatever ``fill_missing_data_reads`` says, so
:func:`missing_chunk` looks each chunk up in its shard's index instead.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorstore as ts

from pssr_volume.errors import PssrError
from pssr_volume.io import stores
from pssr_volume.io.filesystems import filesystem, fs_path
from pssr_volume.io.kvstores import kvstore_spec
from pssr_volume.io.levels import LevelLayout
from pssr_volume.io.precomputed import INFO, scales
from pssr_volume.io.precomputed_layout import Scale
from pssr_volume.io.stores import Location
from pssr_volume.urls import is_url

Box = tuple[tuple[int, int], ...]


def _version(path: str) -> str:
    """What identifies this ``info`` file: a handle is reused only while it is the same
    (an output replaced with ``--overwrite`` is never written through a stale handle)."""
    where = stores.child(path, INFO)
    if is_url(path):
        with stores.remote_errors(str(where)):
            meta = filesystem(str(where)).info(fs_path(str(where)))
        return str(meta.get("ETag") or meta.get("generation") or meta.get("size"))
    st = Path(where).stat()
    return f"{st.st_mtime_ns}-{st.st_size}"


@functools.lru_cache(maxsize=64)
def _open(path: str, key: str, write: bool, version: str) -> tuple[ts.TensorStore, Scale]:
    del version  # cache key only
    spec = {"driver": "neuroglancer_precomputed", "kvstore": kvstore_spec(path),
            "scale_metadata": {"key": key}}
    store = ts.open(spec, open=True, read=True, write=write).result()
    scale = next(s for s in scales(path) if s.key == key)
    return store[ts.d["channel"][0]].translate_to[0, 0, 0].T, scale  # (z, y, x) from 0


@functools.lru_cache(maxsize=64)
def _shards(path: str, key: str, version: str) -> ts.KvStore:
    """The scale's shards as a key-value store (keys: chunk ids, 8 bytes big-endian)."""
    scale = _open(path, key, False, version)[1]
    return ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "metadata": scale.sharding(),
                            "base": kvstore_spec(stores.child(path, key))}).result()


def _chunks(scale: Scale, region: Box) -> list[tuple[tuple[int, ...], Box]]:
    """The chunks of ``scale`` in ``region`` (whole chunks, clipped at the volume's end):
    grid index and voxel box of each."""
    ranges = [range(a // c, math.ceil(b / c)) for (a, b), c in zip(region, scale.chunk)]
    out = []
    for index in np.ndindex(*(len(r) for r in ranges)):
        grid = tuple(r[i] for r, i in zip(ranges, index))
        out.append((grid, tuple((g * c, min((g + 1) * c, n))
                                for g, c, n in zip(grid, scale.chunk, scale.shape))))
    return out


def _key(scale: Scale, index: tuple[int, ...]) -> bytes:
    return struct.pack(">Q", scale.chunk_id(index))


class Write:
    """A region being written: :meth:`result` waits for tensorstore, then stores the
    region's all-zero chunks, which the driver leaves out (module docstring)."""

    def __init__(self, path: str, key: str, region: Box, data: np.ndarray):
        version = _version(path)
        view, scale = _open(path, key, True, version)
        self.future = view[tuple(slice(a, b) for a, b in region)].write(  # no copy: as zarr
            data, can_reference_source_data_indefinitely=True)
        origin = [a for a, _ in region]
        self.zeros = [(index, box) for index, box in _chunks(scale, region)
                      if not data[tuple(slice(a - o, b - o)
                                        for (a, b), o in zip(box, origin))].any()]
        self.path, self.key, self.version, self.dtype = path, key, version, data.dtype

    def result(self) -> None:
        self.future.result()
        if not self.zeros:
            return
        scale = _open(self.path, self.key, True, self.version)[1]
        kv, txn = _shards(self.path, self.key, self.version), ts.Transaction()
        for index, box in self.zeros:  # raw encoding: the chunk's bytes, x fastest
            shape = tuple(b - a for a, b in box)
            zeros = np.zeros(shape, self.dtype.newbyteorder("<")).tobytes()
            kv.with_transaction(txn).write(_key(scale, index), zeros).result()
        txn.commit_async().result()


def start_write(path: str, level: str, region: Box, data: np.ndarray) -> Write:
    """Begin writing ``data`` at ``region`` (z, y, x, from 0) of a scale; ``.result()``
    waits until it is stored. Regions are whole shards."""
    return Write(path, level, region, data)


def read_region(path: str, level: str, region: Box) -> np.ndarray:
    """The voxels of ``region`` (z, y, x, from 0) of a scale."""
    view = _open(path, level, False, _version(path))[0]
    return np.asarray(view[tuple(slice(a, b) for a, b in region)].read().result())


def missing_chunk(path: str, scale: Scale, region: Box) -> str | None:
    """The first chunk of ``region`` its shard does not hold (tensorstore reads a missing
    chunk of a sharded scale as zeros), as an error line; None when all are there. Each
    chunk's key is looked up in its shard's index (a read of no bytes: its own shard only)."""
    kv = _shards(path, scale.key, _version(path))
    chunks = _chunks(scale, region)
    found = [kv.read(_key(scale, index), byte_range=slice(0, 0)) for index, _ in chunks]
    for (index, _), future in zip(chunks, found):
        if future.result().state == "missing":
            shard = format(scale.shard_number(index), "x")
            return (f"NOT_FOUND: chunk {','.join(map(str, index))} of scale {scale.key} "
                    f"(shard {shard}) is missing")
    return None


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ShardLayout(LevelLayout):
    """A scale as ``verify`` reads it: the file unit is the shard, named by its number."""

    scale: Scale | None = None

    def file(self, index: Sequence[int]) -> str:
        assert self.scale is not None
        return self.scale.shard_file(tuple(index))


def level_layout(path: Location, level: str) -> ShardLayout:
    """How scale ``level`` is stored (chunks, shards and their files).

    Raises
    ------
    PssrError
        When the ``info`` file is missing or damaged, or the scale is not there.
    """
    try:
        scale = next(s for s in scales(path) if s.key == level)
    except (StopIteration, KeyError, TypeError, ValueError, IndexError) as e:
        raise PssrError(f"{path}: the info file does not describe scale {level} "
                        f"({type(e).__name__}); its chunks cannot be read or checked: "
                        "--overwrite writes the output again") from None
    return ShardLayout(level, scale.shape, scale.chunk, scale.shard, "", "", scale)


def level_paths(path: Location) -> list[str]:
    """The scale keys of the volume, finest first."""
    return [s.key for s in scales(path)]


def check_region(path: Location, layout: ShardLayout, region: Box, strict: bool) -> str | None:
    """Read ``region`` of a scale and discard it: ``None`` when every chunk in it decodes
    (gzip's CRC-32 matches), else the error; with ``strict``, a chunk its shard does not
    hold is an error too (``NOT_FOUND ... is missing``)."""
    assert layout.scale is not None
    try:
        if strict and (missing := missing_chunk(str(path), layout.scale, region)) is not None:
            return missing
        read_region(str(path), layout.level, region)
    except (ValueError, OSError) as e:  # tensorstore reports decode errors as ValueError
        return str(e)
    return None
