"""The OME-Zarr output store: the one owner of checking, creating and finishing it.

Every command that writes an OME-Zarr (``run``, ``convert``, ``crappify``) goes through
here: :func:`check_output` refuses an existing output unless it is resumed with the same
settings or replaced with ``--overwrite`` (only a pssr-volume output or an empty folder
is ever deleted); :func:`open_output` creates the store (or reuses it on resume);
:func:`complete_output` marks it finished. The only module that knows the NGFF versions:
0.5 on zarr v3 (default, sharded) or 0.4 on zarr v2. Arrays are created once by the
driver; tasks write whole chunks or shards of them through :mod:`pssr_volume.io.levels`.
The metadata itself is written by ome-zarr-py, the reference implementation.
"""

from __future__ import annotations

import datetime
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numcodecs
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_multiscales_metadata
from zarr.codecs import ZstdCodec

from pssr_volume.errors import PssrError
from pssr_volume.journal import Journal
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
                  shards: tuple[tuple[int, int, int], ...] | None = None,
                  downsample: str = "mean") -> None:
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
        metadata={"method": f"pssr_volume.pyramid.downsample ({downsample})",
                  "kwargs": {"method": downsample}},
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


def _is_pssr_output(path: Path) -> bool:
    return read_provenance(path) is not None


def remove_output(path: Path) -> None:
    """Delete an existing output for ``--overwrite``: only a pssr-volume output (a Zarr
    store with its provenance) or an empty directory is ever deleted."""
    if path.is_dir() and (not any(path.iterdir()) or _is_pssr_output(path)):
        shutil.rmtree(path)
        return
    what = "a Zarr store written by another tool" if is_zarr_store(path) else "not a Zarr store"
    raise PssrError(f"refusing to delete {path}: it is {what}")


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def check_output(path: Path, *, resume: bool, overwrite: bool, fingerprint: str,
                 settings: dict[str, Any], hint: str = "--resume to finish it or --overwrite "
                 "to replace it") -> bool:
    """Refuse an existing output unless ``resume`` (same fingerprint) or ``overwrite``.

    Writes nothing; run it before any work starts. Returns whether the output is a
    finished one that ``resume`` asked for: nothing is left to do then.
    """
    if not path.exists():
        return False
    if path.is_dir() and not any(path.iterdir()) and not resume:
        return False
    if overwrite:
        if not (path.is_dir() and (not any(path.iterdir()) or _is_pssr_output(path))):
            what = ("a Zarr store written by another tool" if is_zarr_store(path)
                    else "not a pssr-volume output")
            raise PssrError(f"refusing to overwrite {path}: it is {what}")
        return False
    if not resume:
        raise PssrError(f"output exists: {path} (use {hint})")
    prov = read_provenance(path)
    if prov is None or "fingerprint" not in prov:
        raise PssrError(f"cannot resume: {path} is not a pssr-volume output")
    if prov["fingerprint"] != fingerprint:
        changes = "; ".join(_diff(prov.get("settings", {}), settings)) or "unknown"
        raise PssrError(f"cannot resume {path}: settings differ from the first run ({changes})")
    return prov.get("status") == "complete"


@dataclass(frozen=True)
class OutputLayout:
    """What an output store holds: its levels and how they are stored."""

    levels: tuple[Level, ...]
    chunk: tuple[int, int, int]
    shards: tuple[tuple[int, int, int], ...] | None
    dtype: str
    ngff_version: str = "0.5"
    compression_level: int = 1
    name: str = "image"
    downsample: str = "mean"


def open_output(path: Path, layout: OutputLayout, provenance: dict[str, Any],
                overwrite: bool = False) -> dict[str, Any] | None:
    """Create the output store, after removing the old one for ``overwrite``; or, when it
    exists with provenance (a resume that :func:`check_output` allowed), leave it as it is.

    Returns the provenance of the first run when resuming, else ``None``.
    """
    if overwrite and path.exists():
        remove_output(path)
    prov = read_provenance(path)
    if prov is not None:
        return prov
    if path.is_dir():
        path.rmdir()  # an empty directory (anything else was refused by check_output)
    create_output(path, layout.levels, layout.chunk, layout.dtype, layout.ngff_version,
                  layout.compression_level, name=layout.name,
                  provenance={**provenance, "status": "running"}, shards=layout.shards,
                  downsample=layout.downsample)
    return None


def complete_output(path: Path) -> None:
    """Mark an output finished in its provenance, then delete its journal (no folder of
    ours is left inside a finished output)."""
    update_provenance(path, status="complete",
                      completed=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    Journal(path).remove()
