"""Reading and writing regions of an output's level arrays, through tensorstore.

The driver creates the arrays and their NGFF metadata (:mod:`pssr_volume.io.ome_zarr`);
tasks on the workers only write whole chunks (or whole shards) of the regions they own,
and later pyramid stages read a level back. tensorstore encodes and compresses the
chunks of a write on its own thread pool, off the Python interpreter, which measured
about 3x faster than zarr-python on sharded arrays here (docs/PERFORMANCE.md). It reads
the same zarr v3 (NGFF 0.5, sharded or not) and zarr v2 (NGFF 0.4) arrays that
zarr-python wrote.

Writes store every chunk, also one whose voxels all equal the fill value (tensorstore skips
those by default): in a finished output a missing chunk is then always damage, which
``pssr-volume verify`` reports. For verification, :func:`check_region` reads a region with
missing chunks as errors instead of fill values.

An output at an ``s3://`` or ``gs://`` URL is read and written through tensorstore's kvstore
driver of that store (:func:`pssr_volume.urls.kvstore_spec`); a handle is then keyed by the
version (ETag) of the level's metadata object instead of the file's identity.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from pssr_volume.errors import PssrError
from pssr_volume.io import stores
from pssr_volume.io.filesystems import filesystem, fs_path
from pssr_volume.io.kvstores import kvstore_spec
from pssr_volume.urls import is_url

Box = tuple[tuple[int, int], ...]


def _metadata(path: str, level: str) -> Path | str:
    if is_url(path):
        return _metadata_url(path, level)[0]
    folder = Path(path) / level
    v3 = folder / "zarr.json"
    return v3 if v3.is_file() else folder / ".zarray"


def _metadata_url(path: str, level: str) -> tuple[str, str]:
    """The metadata object of a level at a URL, and its version."""
    fs = filesystem(path)
    with stores.remote_errors(path):
        for name in ("zarr.json", ".zarray"):
            url = str(stores.child(path, level, name))
            try:
                info = fs.info(fs_path(url))
            except FileNotFoundError:
                continue
            return url, str(info.get("ETag") or info.get("generation") or info.get("size"))
    raise FileNotFoundError(f"no zarr array at {stores.child(path, level)}")


def _identity(path: str, level: str) -> tuple[str, int | str, int]:
    # The metadata file's identity is part of the key: an output deleted and created
    # again at the same path (--overwrite) is never written through a stale handle.
    if is_url(path):
        url, version = _metadata_url(path, level)
        return url, version, 0
    meta = _metadata(path, level)
    st = Path(meta).stat()
    return str(meta), st.st_mtime_ns, st.st_size


def _handle(path: str, level: str, write: bool) -> ts.TensorStore:
    meta, version, size = _identity(path, level)
    return _open(meta, write, version, size)


def _folder_spec(meta: str) -> dict:
    return kvstore_spec(meta.rpartition("/")[0] if is_url(meta) else str(Path(meta).parent))


@functools.lru_cache(maxsize=64)
def _open(meta: str, write: bool, version: int | str, size: int) -> ts.TensorStore:
    del version, size  # cache key only
    driver = "zarr3" if meta.endswith("zarr.json") else "zarr"
    spec: dict = {"driver": driver, "kvstore": _folder_spec(meta)}
    if write:
        spec["store_data_equal_to_fill_value"] = True  # every chunk exists (see above)
    return ts.open(spec, open=True, read=True, write=write).result()


def _index(region: Box) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in region)


def start_write(path: str, level: str, region: Box, data: np.ndarray) -> ts.WriteFutures:
    """Begin writing ``data`` at ``region`` of a level; ``.result()`` waits until it is
    on disk. Regions are whole chunks (whole shards where the array is sharded).

    ``data`` is handed over: tensorstore encodes its chunks from it in place instead of
    copying them into chunk buffers first (``can_reference_source_data_indefinitely``; 20-35 ms
    less CPU for a 2 x 4096 x 4096 uint8 block, docs/PERFORMANCE.md), so the caller must not
    change it afterwards. The engine never does: every level it writes is a new array."""
    return _handle(path, level, True)[_index(region)].write(
        data, can_reference_source_data_indefinitely=True)


def write_all(writes: Sequence[ts.WriteFutures]) -> None:
    """Wait for every write in ``writes`` to be committed (raises the first failure)."""
    for w in writes:
        w.result()


def read_region(path: str, level: str, region: Box) -> np.ndarray:
    """The voxels of ``region`` of a level, as a numpy array."""
    return np.asarray(_handle(path, level, False)[_index(region)].read().result())


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class LevelLayout:
    """How one level array is stored: its shape, its chunks, its shards (the files, when
    sharded) and how a grid index becomes a file name."""

    level: str
    shape: tuple[int, ...]
    chunk: tuple[int, ...]  # the read and checksum unit
    shard: tuple[int, ...] | None  # the file unit, when sharded
    prefix: str  # "c/" (zarr v3 default keys) or "" (v2 keys)
    separator: str

    @property
    def unit(self) -> tuple[int, ...]:
        """The shape one file holds."""
        return self.shard or self.chunk

    def file(self, index: Sequence[int]) -> str:
        """The file (relative to the level folder) of the unit at grid ``index``."""
        return self.prefix + self.separator.join(map(str, index))


def level_layout(path: str | Path, level: str) -> LevelLayout:
    """Read a level's zarr metadata (v3 ``zarr.json`` or v2 ``.zarray``).

    Raises
    ------
    PssrError
        When the metadata is missing, not JSON or not a zarr array's (one line).
    """
    meta = _metadata(str(path), level)
    try:
        return _layout(meta, level, json.loads(stores.read_bytes(meta)))
    except PssrError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        what = "missing" if isinstance(e, FileNotFoundError) else "damaged"
        why = " ".join(str(e).split())[:120] or type(e).__name__
        raise PssrError(f"{path}: the metadata of level {level} ({meta}) is {what} "
                        f"({type(e).__name__}: {why}); its chunks cannot be read or checked: "
                        "--overwrite writes the output again") from None


def _layout(meta: Path | str, level: str, d: Any) -> LevelLayout:
    if str(meta).endswith("zarr.json"):
        outer = tuple(d["chunk_grid"]["configuration"]["chunk_shape"])
        codecs = d.get("codecs") or [{}]
        enc = d.get("chunk_key_encoding", {"name": "default"})
        sep = enc.get("configuration", {}).get("separator", "/" if enc["name"] == "default"
                                                else ".")
        prefix = "c/" if enc["name"] == "default" else ""
        if codecs[0].get("name") == "sharding_indexed":
            inner = tuple(codecs[0]["configuration"]["chunk_shape"])
            return LevelLayout(level, tuple(d["shape"]), inner, outer, prefix, sep)
        return LevelLayout(level, tuple(d["shape"]), outer, None, prefix, sep)
    return LevelLayout(level, tuple(d["shape"]), tuple(d["chunks"]), None, "",
                       d.get("dimension_separator") or ".")


@functools.lru_cache(maxsize=64)
def _checker(meta: str, strict: bool, version: int | str) -> ts.TensorStore:
    del version  # cache key only
    driver = "zarr3" if meta.endswith("zarr.json") else "zarr"
    spec = {"driver": driver, "kvstore": _folder_spec(meta),
            "fill_missing_data_reads": not strict}
    return ts.open(spec, open=True, read=True).result()


def check_region(path: str | Path, level: str, region: Box, strict: bool) -> str | None:
    """Read ``region`` of a level and discard it: ``None`` when every chunk in it decodes
    (and its checksum matches), else tensorstore's error. With ``strict``, a missing chunk
    is an error too (``NOT_FOUND ... is missing``); otherwise it reads as the fill value."""
    meta, version, _ = _identity(str(path), level)
    try:
        store = _checker(meta, strict, version)
        store[_index(region)].read().result()
    except (ValueError, OSError) as e:  # tensorstore reports decode errors as ValueError
        return str(e)
    return None


def is_missing(error: str) -> bool:
    """Whether a :func:`check_region` error says a chunk does not exist."""
    return error.startswith("NOT_FOUND") and "is missing" in error
