"""What ``pssr-volume info`` says about a volume: shape, dtype, chunks, voxel size,
translation (``offset``), pyramid levels and provenance.

:func:`volume_info` gathers it as a JSON-ready dict; :func:`format_info` turns
that into the lines the command prints.
"""

from __future__ import annotations

import os
from typing import Any

import zarr

from pssr_volume.io import stores
from pssr_volume.io.inputs import open_input
from pssr_volume.io.ome_zarr import read_provenance
from pssr_volume.io.zarr_input import find_ome_parent, is_zarr, level_transform, multiscales

__all__ = ["format_info", "run_status", "volume_info"]


def volume_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe any input volume; for an OME-Zarr, every pyramid level too.

    Raises
    ------
    PssrError
        If `path` cannot be opened as a volume.
    """
    vol = open_input(path)
    out: dict[str, Any] = {
        "path": vol.source,
        "kind": vol.kind,
        "shape": list(vol.shape),
        "dtype": vol.dtype,
        "chunks": None if vol.chunks is None else list(vol.chunks),
        "voxel_size_nm": None if vol.voxel_size is None else list(vol.voxel_size),
        "translation_nm": None if vol.translation is None else list(vol.translation),
        "summary": vol.describe(),
        "notes": list(vol.notes),
    }
    if vol.kind == "ome-zarr":
        out.update(_ome_levels(vol.path))
        prov = read_provenance(vol.path)
        if prov:
            out["provenance"] = prov
    return out


def _ome_levels(group_path: str) -> dict[str, Any]:
    group = zarr.open_group(store=stores.zarr_store(group_path, read_only=True), mode="r")
    attrs = group.attrs.asdict()
    ms_list = multiscales(attrs)
    if not ms_list:  # opened through a level path
        parent = find_ome_parent(group_path)
        ms_list = [] if parent is None else [parent[2]]
    ms = ms_list[0] if ms_list else {}
    ome = attrs.get("ome")
    version = ome.get("version") if isinstance(ome, dict) else ms.get("version")
    levels = []
    for ds in ms.get("datasets") or []:
        where = os.path.join(group_path, str(ds.get("path", "")))
        if not is_zarr(where):
            continue
        array = zarr.open_array(store=stores.zarr_store(where, read_only=True), mode="r")
        _, scale, shift, units = level_transform(ms, ds, array.ndim)
        levels.append({
            "path": str(ds.get("path")),
            "shape": list(array.shape),
            "chunks": list(array.chunks),
            "scale": scale,
            "translation": shift,
            "units": units,
        })
    return {
        "ngff_version": version,
        "zarr_format": group.metadata.zarr_format,
        "name": ms.get("name"),
        "levels": levels,
    }


def _fmt(values: Any) -> str:
    if values is None:
        return "-"
    return "x".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def run_status(info: dict[str, Any]) -> str | None:
    """The ``status`` line's text for a pssr-volume output (None for other volumes).

    An output whose provenance ``status`` is not ``complete`` was interrupted (or is
    being written right now): ``run --resume`` finishes it.
    """
    prov = info.get("provenance")
    if not isinstance(prov, dict) or "status" not in prov:
        return None
    status = str(prov["status"])
    if status == "complete":
        return status
    return (f"{status} (unfinished: rerun with --resume to finish it, unless a run is "
            "still writing it)")


def format_info(info: dict[str, Any]) -> list[str]:
    """Human-readable lines for :func:`volume_info`'s dict (provenance not included,
    except a pssr-volume output's run status)."""
    lines = [
        info["summary"],
        f"path      {info['path']}",
        f"chunks    {_fmt(info['chunks'])}",
        f"voxel     {_fmt(info['voxel_size_nm'])} nm" if info["voxel_size_nm"] else
        "voxel     unknown (pass --voxel-size to run/convert)",
    ]
    if info.get("translation_nm") is not None:
        offset = "x".join(f"{v:.12g}" for v in info["translation_nm"])  # positions: all digits
        lines.append(f"offset    {offset} nm (z, y, x)")
    if "levels" in info:
        lines.append(f"format    OME-Zarr NGFF {info['ngff_version']} (zarr v{info['zarr_format']})"
                     + (f", name {info['name']!r}" if info.get("name") else ""))
        lines.append(f"levels    {len(info['levels'])}")
        for lv in info["levels"]:
            unit = next((u for u in reversed(lv["units"]) if u), "")
            lines.append(f"  {lv['path']:>4}  shape {_fmt(lv['shape']):<16} chunks "
                         f"{_fmt(lv['chunks']):<12} scale {_fmt(lv['scale'])} {unit}".rstrip())
    status = run_status(info)
    if status is not None:
        lines.append(f"status    {status}")
    lines += [f"note      {n}" for n in info["notes"]]
    return lines
