"""The OME-Zarr output: creating the store, its NGFF metadata, and provenance.

The only module that knows the NGFF versions: 0.5 on zarr v3 (default) or
0.4 on zarr v2. Arrays are created once by the driver, then opened ``r+`` by
workers, which each write whole chunks only. The metadata itself is written
by ome-zarr-py, the reference implementation.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any, cast

import numcodecs
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_multiscales_metadata
from zarr.codecs import ZstdCodec

from pssr_volume.errors import PssrError
from pssr_volume.pyramid import Level

PROVENANCE_KEY = "pssr_volume"
AXES = [{"name": n, "type": "space", "unit": "nanometer"} for n in ("z", "y", "x")]


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` holds zarr group or array metadata (v2 or v3)."""
    return any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_paths(input_path: Path, output: Path) -> None:
    """Refuse an output that is, lies inside, or contains the input."""
    i, o = input_path.resolve(), output.resolve()
    if i == o:
        raise PssrError(f"output {output} is the input; choose another output path")
    if _is_within(o, i):
        raise PssrError(f"output {output} lies inside the input {input_path}")
    if _is_within(i, o):
        raise PssrError(f"output {output} contains the input {input_path}")


def create_output(path: str | Path, levels: tuple[Level, ...], chunk: tuple[int, int, int],
                  dtype: str, ngff_version: str = "0.5", compression_level: int = 1,
                  name: str = "restored", provenance: dict[str, Any] | None = None,
                  shards: tuple[tuple[int, int, int], ...] | None = None) -> None:
    """Create an empty multiscale OME-Zarr image with one array per level.

    Every level uses ``chunk`` and zstd at ``compression_level``; the metadata
    gives each level its scale in nanometres. With ``shards`` (NGFF 0.5 only, one
    shape per level) the chunks of a level are stored in shard files of that
    shape: one file per shard instead of one per chunk. ``provenance`` goes into
    the group attributes under ``"pssr_volume"``.
    """
    path = Path(path)
    v3 = ngff_version == "0.5"
    if shards is not None and not v3:
        raise PssrError("sharding needs NGFF 0.5 (zarr v3); NGFF 0.4 outputs are unsharded")
    group = zarr.open_group(str(path), mode="w-", zarr_format=3 if v3 else 2)
    for k, lv in enumerate(levels):
        if v3:
            group.create_array(
                lv.path, shape=lv.shape, chunks=chunk, dtype=dtype, fill_value=0,
                shards=None if shards is None else shards[k],
                compressors=ZstdCodec(level=compression_level),
                dimension_names=["z", "y", "x"],
            )
        else:
            group.create_array(
                lv.path, shape=lv.shape, chunks=chunk, dtype=dtype, fill_value=0,
                compressors=numcodecs.Zstd(level=compression_level),
                chunk_key_encoding={"name": "v2", "separator": "/"},
            )
    datasets = [
        {"path": lv.path,
         "coordinateTransformations": [
             {"type": "scale", "scale": list(lv.voxel_size)},
             {"type": "translation", "translation": [round(t, 6) for t in lv.translation]},
         ]}
        for lv in levels
    ]
    write_multiscales_metadata(
        group, datasets, fmt=FormatV05() if v3 else FormatV04(), axes=AXES, name=name,
        metadata={"method": "mean pooling (pssr_volume.pyramid.downsample)"},
    )
    if provenance is not None:
        group.attrs[PROVENANCE_KEY] = json.loads(json.dumps(provenance))


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """The ``pssr_volume`` attributes of an output, or ``None`` if it has none."""
    try:
        group = zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, ValueError, TypeError, zarr.errors.NodeTypeValidationError,
            zarr.errors.GroupNotFoundError):
        return None
    value = group.attrs.get(PROVENANCE_KEY)
    return dict(value) if isinstance(value, dict) else None


def update_provenance(path: str | Path, **updates: Any) -> None:
    """Merge ``updates`` into the output's ``pssr_volume`` attributes (driver only)."""
    group = zarr.open_group(str(path), mode="r+")
    current = dict(cast(dict[str, Any], group.attrs.get(PROVENANCE_KEY, {})))  # written as a dict
    current.update(json.loads(json.dumps(updates)))
    group.attrs[PROVENANCE_KEY] = current


@functools.lru_cache(maxsize=64)
def open_level(path: str, level: str) -> zarr.Array:
    """A level array opened for writing, cached per process."""
    return zarr.open_array(str(Path(path) / level), mode="r+")


@functools.lru_cache(maxsize=64)
def open_level_readonly(path: str, level: str) -> zarr.Array:
    """A level array opened read-only, cached per process."""
    return zarr.open_array(str(Path(path) / level), mode="r")


def remove_output(path: Path) -> None:
    """Delete an existing output for ``--overwrite``; only a zarr store or an
    empty directory is ever deleted."""
    if path.is_dir() and (is_zarr_store(path) or not any(path.iterdir())):
        shutil.rmtree(path)
        open_level.cache_clear()
        open_level_readonly.cache_clear()
        return
    raise PssrError(f"refusing to delete {path}: it is not a Zarr store")
