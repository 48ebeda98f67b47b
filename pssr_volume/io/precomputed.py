"""The neuroglancer precomputed output (``--output-format precomputed``): what it is, creating
it, and its provenance; its chunks are :mod:`pssr_volume.io.precomputed_chunks`'s.

An output is a folder (or an ``s3://`` / ``gs://`` prefix) holding ``info`` (the multiscale
metadata: one scale per pyramid level, raw chunks, sharded with the identity hash; the layout
is :mod:`pssr_volume.io.precomputed_layout`'s), one folder per scale with its shard files,
and ``provenance``, the layer provenance file CloudVolume reads, with ours under
``pssr_volume`` (the same record an OME-Zarr output keeps in its group attributes). The
lease and journal live in the state folder ``.pssr-volume``, as for OME-Zarr.

This module imports no tensorstore (the command line's early checks read provenance).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pssr_volume.errors import PssrError
from pssr_volume.io import objects, stores
from pssr_volume.io.precomputed_layout import SHARDING, Scale, grid_bits, prefix_counts
from pssr_volume.io.stores import Location
from pssr_volume.urls import is_url

if TYPE_CHECKING:
    from pssr_volume.io.ome_zarr import OutputLayout

INFO = "info"
PROVENANCE = "provenance"  # CloudVolume's layer provenance file
PROVENANCE_KEY = "pssr_volume"
STORAGE = {"every_chunk_stored": True, "checksum": "gzip CRC-32 (chunks, minishard indices)"}

Box = tuple[tuple[int, int], ...]


def is_precomputed(path: Location) -> bool:
    """Whether ``path`` holds a precomputed volume's ``info`` file: JSON with a list of
    scales (a web server that answers every path with a page holds none)."""
    info = _json(stores.child(path, INFO))
    return info is not None and isinstance(info.get("scales"), list)


def _put(where: Location, data: bytes) -> None:
    """Write a small file whole: locally to a temporary name, then renamed (readers never
    see it torn); on an object store one put (atomic)."""
    if is_url(where):
        with stores.remote_errors(str(where)):
            objects.write(str(where), data)
        return
    target = Path(where)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)


def _json(where: Location) -> dict[str, Any] | None:
    try:
        value = json.loads(stores.read_bytes(where))
    except (OSError, ValueError):  # missing, or below a file (NotADirectoryError), or not JSON
        return None
    return value if isinstance(value, dict) else None


def create_volume(path: Location, layout: OutputLayout, provenance: dict[str, Any]) -> None:
    """Write a new output's ``info`` (every scale of ``layout``) and ``provenance``;
    ``provenance`` goes under ``pssr_volume``, with how chunks are stored."""
    assert layout.precomputed is not None
    if not is_url(path):
        Path(path).mkdir(parents=True, exist_ok=True)
    record = {**provenance, "storage": STORAGE}
    _put(stores.child(path, PROVENANCE), json.dumps({
        "description": "restored by pssr-volume" if record.get("model") else
                       "converted by pssr-volume",
        "owners": [], "sources": [str((record.get("input") or {}).get("path", ""))],
        "processing": [{"method": f"pssr-volume {record.get('operation') or 'run'}",
                        "by": f"pssr-volume {record.get('version', '')}".strip()}],
        PROVENANCE_KEY: record,
    }, indent=1).encode())
    info = {"@type": "neuroglancer_multiscale_volume", "type": "image",
            "data_type": layout.dtype, "num_channels": 1,
            "scales": [s.info() for s in layout.precomputed]}
    _put(stores.child(path, INFO), json.dumps(info, indent=1).encode())


def read_provenance(path: Location) -> dict[str, Any] | None:
    """Our record in the output's ``provenance`` file, or ``None``."""
    value = (_json(stores.child(path, PROVENANCE)) or {}).get(PROVENANCE_KEY)
    return dict(value) if isinstance(value, dict) else None


def update_provenance(path: Location, **updates: Any) -> None:
    """Merge ``updates`` into our record in the ``provenance`` file (driver only)."""
    where = stores.child(path, PROVENANCE)
    whole = _json(where) or {}
    record = dict(whole.get(PROVENANCE_KEY) or {})
    record.update(json.loads(json.dumps(updates)))
    _put(where, json.dumps({**whole, PROVENANCE_KEY: record}, indent=1).encode())


def read_info(path: Location) -> dict[str, Any]:
    """The ``info`` file.

    Raises
    ------
    PssrError
        When it is missing or no precomputed image's.
    """
    info = _json(stores.child(path, INFO))
    if info is None or not isinstance(info.get("scales"), list) or not info["scales"]:
        raise PssrError(f"{path} is not a neuroglancer precomputed volume (no readable "
                        "info file with scales)")
    return info


def scale_of(entry: dict[str, Any]) -> Scale:
    """A scale of an ``info`` file; its shard shape follows from the sharding bits."""
    size, chunk = entry["size"][::-1], entry["chunk_sizes"][0][::-1]
    sharding = entry.get("sharding") or {}
    if sharding.get("@type") != SHARDING or sharding.get("hash") != "identity":
        raise PssrError(f"scale {entry.get('key')} is not sharded with the identity hash: "
                        "pssr-volume checks only the sharded layout it writes")
    preshift, mini = int(sharding["preshift_bits"]), int(sharding["minishard_bits"])
    grid = tuple(math.ceil(n / c) for n, c in zip(size, chunk))
    per = prefix_counts(grid_bits(grid[::-1]), preshift + mini)[::-1]  # (z, y, x)
    return Scale(str(entry["key"]), tuple(size), tuple(chunk),
                 tuple(c << t for c, t in zip(chunk, per)),
                 tuple(entry["resolution"][::-1]), tuple(entry.get("voxel_offset", [0] * 3)[::-1]),
                 preshift, mini, int(sharding["shard_bits"]))


def scales(path: Location) -> list[Scale]:
    """Every scale of the volume at ``path``, finest first."""
    return [scale_of(entry) for entry in read_info(path)["scales"]]


def volume_info(path: Location) -> dict[str, Any]:
    """What ``pssr-volume info`` says about a precomputed volume (the keys of
    :func:`pssr_volume.io.info.volume_info`, sizes in z, y, x; ``voxel_offset`` in voxels).

    Raises
    ------
    PssrError
        When ``path`` holds no readable precomputed ``info``.
    """
    info = read_info(path)
    levels = []
    for entry in info["scales"]:
        try:
            shard: list[int] | None = list(scale_of(entry).shard)
        except (PssrError, KeyError, TypeError, ValueError):
            shard = None  # unsharded, or hashed: no shard is a box
        levels.append({"path": str(entry.get("key")), "shape": entry["size"][::-1],
                       "chunks": entry["chunk_sizes"][0][::-1], "shards": shard,
                       "scale": entry["resolution"][::-1], "translation": None,
                       "voxel_offset": entry.get("voxel_offset", [0, 0, 0])[::-1],
                       "units": ["nanometer"] * 3, "encoding": entry.get("encoding")})
    top = levels[0]
    return {
        "path": str(path), "kind": "precomputed", "shape": top["shape"],
        "dtype": info.get("data_type"), "chunks": top["chunks"],
        "voxel_size_nm": top["scale"], "translation_nm": None,
        "voxel_offset": top["voxel_offset"],
        "summary": f"neuroglancer precomputed {'x'.join(map(str, top['shape']))} "
                   f"{info.get('data_type')}, {info.get('num_channels', 1)} channel(s)",
        "notes": [], "format": "neuroglancer precomputed", "levels": levels,
        **({"provenance": prov} if (prov := read_provenance(path)) else {}),
    }
