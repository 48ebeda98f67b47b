"""What ``pssr-volume info`` says about a volume: shape, dtype, chunks, voxel size,
translation (``offset``), pyramid levels and provenance.

:func:`volume_info` gathers it as a JSON-ready dict (what ``info --json`` prints);
:func:`format_info` turns that into the short summary the command prints, and
:func:`format_model` does the same for a model's description.
"""

from __future__ import annotations

import os
from typing import Any

import zarr

from pssr_volume.io import stores
from pssr_volume.io.inputs import open_input
from pssr_volume.io.ome_zarr import read_provenance
from pssr_volume.io.zarr_input import (
    dataset_path,
    find_ome_parent,
    is_zarr,
    level_transform,
    multiscales,
)

__all__ = ["format_info", "format_model", "run_status", "volume_info"]


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
        where = os.path.join(group_path, dataset_path(group_path, ds))
        if not is_zarr(where):
            continue
        array = zarr.open_array(store=stores.zarr_store(where, read_only=True), mode="r")
        _, scale, shift, units = level_transform(ms, ds, array.ndim)
        levels.append({
            "path": str(ds.get("path")),
            "shape": list(array.shape),
            "chunks": list(array.chunks),
            "shards": None if array.shards is None else list(array.shards),
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
    """The short summary of :func:`volume_info`'s dict: the volume, its levels and, for a
    pssr-volume output, what made it (status, model, noise, blending, input, time)."""
    levels = info.get("levels") or []
    shards = levels[0].get("shards") if levels else None
    lines = [
        info["summary"],
        f"path      {info['path']}",
        f"chunks    {_fmt(info['chunks'])}" + (f", shards {_fmt(shards)}" if shards else ""),
        f"voxel     {_fmt(info['voxel_size_nm'])} nm" if info["voxel_size_nm"] else
        "voxel     unknown (pass --voxel-size to run/convert)",
    ]
    if info.get("translation_nm") is not None:
        offset = "x".join(f"{v:.12g}" for v in info["translation_nm"])  # positions: all digits
        lines.append(f"offset    {offset} nm (z, y, x)")
    if info.get("voxel_offset") is not None:  # precomputed: voxel i lies at offset + i
        lines.append(f"offset    {_fmt(info['voxel_offset'])} voxels (z, y, x)")
    if info.get("format"):  # not OME-Zarr (precomputed)
        lines.append(f"format    {info['format']}")
    elif "levels" in info:
        lines.append(f"format    OME-Zarr NGFF {info['ngff_version']} (zarr v{info['zarr_format']})"
                     + (f", name {info['name']!r}" if info.get("name") else ""))
    if "levels" in info:
        lines.append(f"levels    {len(info['levels'])}")
        for lv in info["levels"]:
            unit = next((u for u in reversed(lv["units"]) if u), "")
            lines.append(f"  {lv['path']:>4}  shape {_fmt(lv['shape']):<16} chunks "
                         f"{_fmt(lv['chunks']):<12} scale {_fmt(lv['scale'])} {unit}".rstrip())
    status = run_status(info)
    if status is not None:
        lines.append(f"status    {status}")
    if isinstance(info.get("provenance"), dict):
        lines += _provenance_lines(info["provenance"])
    lines += [f"note      {n}" for n in info["notes"]]
    return lines


def _provenance_lines(prov: dict[str, Any]) -> list[str]:
    """What made a pssr-volume output, one line per fact (``info --json`` has it all)."""
    settings = prov.get("settings") or {}
    model = prov.get("model")
    operation = prov.get("operation") or ("run" if model else None)
    lines = [f"made by   {prov.get('software', '?')} {prov.get('version', '')}"
             + (f" {operation}" if operation else "")]
    if isinstance(model, dict):
        sha = str(model.get("sha256") or settings.get("model_sha256") or "")[:12]
        lines.append(f"model     {model.get('name')} ({model.get('architecture')}, "
                     f"x{model.get('scale')}, sha256 {sha or '?'})")
    noise = settings.get("noise")
    if isinstance(noise, dict):
        lines.append(f"noise     var = {noise.get('a', 0):.3g} + {noise.get('b', 0):.3g} * I "
                     f"(normalised intensity; {noise.get('source', '?')})")
    if "blend" in settings:
        halo = settings.get("halo") or [0, 0, 0]
        lines.append(f"blend     {settings['blend']}, halo {halo[-2]},{halo[-1]} px"
                     + (f" and {halo[0]} section(s) in z" if halo[0] else ""))
    if "downsample" in settings:
        lines.append(f"pyramid   {settings['downsample']} pooling")
    source = prov.get("input") or settings.get("input")
    if isinstance(source, dict):
        shape = f" {_fmt(source['shape'])}" if source.get("shape") else ""
        array = f" (array {source['array']})" if source.get("array") else ""
        lines.append(f"input     {source.get('path')}{array}: {source.get('kind', '')}"
                     f"{shape} {source.get('dtype', '')}".rstrip())
    if settings.get("roi"):
        lines.append(f"roi       {','.join(f'{a}:{b}' for a, b in settings['roi'])} "
                     "(input voxels, z, y, x)")
    figure = prov.get("consistency")
    if isinstance(figure, dict):
        ratio = figure.get("ratio")
        what = (f"{ratio:.2f}x the input's noise" if isinstance(ratio, (int, float)) else
                f"RMS {figure.get('rms', 0):.4f} of the intensity range")
        lines.append(f"fit       restoration degraded back vs input: {what} "
                     f"({figure.get('blocks')} block(s)"
                     + (f"; per-block map in array {figure['map']!r})" if figure.get("map")
                        else ")"))
    if prov.get("completed"):
        lines.append(f"finished  {prov['completed']}")
    return lines


def format_model(desc: dict[str, Any], path: str | None = None) -> list[str]:
    """The short summary of a model's description (:func:`pssr_volume.model.describe` with
    ``full=True``):
    what it is, what it takes, its default halo, how it was trained and how it scored."""
    px = desc.get("trained_pixel_size_nm")
    args = ", ".join(f"{k}={v}" for k, v in (desc.get("arch_args") or {}).items())
    lines = [
        f"model     {desc.get('name')}" + (f": {desc['description']}"
                                            if desc.get("description") else ""),
        *([f"file      {path}"] if path else []),
        f"network   {desc.get('architecture')}" + (f" ({args})" if args else "")
        + f", x{desc.get('scale')}, {desc.get('in_slices')} section(s) in"
        + (", noise-aware" if desc.get("noise_input") else ""),
        f"sha256    {desc.get('sha256')}",
        f"halo      {','.join(map(str, desc.get('default_halo') or []))} px (y, x) by default "
        f"(receptive field {_fmt(desc.get('receptive_field'))} px, grid {desc.get('grid')})",
    ]
    if px:
        lines.append(f"trained   at {px[0]:g}-{px[1]:g} nm pixels")
    training = desc.get("training")
    if isinstance(training, dict) and training:
        facts = [f"{training['steps']} steps" if "steps" in training else "",
                 f"crappifier {training['crappifier']}" if "crappifier" in training else "",
                 f"loss {training['loss']}" if "loss" in training else "",
                 f"{len(training.get('inputs') or [])} input volume(s)",
                 f"from {training['init']}" if training.get("init") else ""]
        lines.append("training  " + ", ".join(f for f in facts if f))
    metrics = desc.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    val = metrics.get("validation")
    if isinstance(val, dict):
        presets = [k.removeprefix("val_psnr_") for k in val if k.startswith("val_psnr_")]
        for preset in presets:
            lines.append(f"val       {preset}: PSNR {val[f'val_psnr_{preset}']:.2f} dB, "
                         f"SSIM {val.get(f'val_ssim_{preset}', float('nan')):.3f}"
                         + (f" (bicubic {val[f'bicubic_psnr_{preset}']:.2f} dB, "
                            f"{val.get(f'bicubic_ssim_{preset}', float('nan')):.3f})"
                            if f"bicubic_psnr_{preset}" in val else ""))
        if "step" in val:
            lines.append(f"          at step {val['step']}"
                         + (f" ({metrics['selected_by']})" if metrics.get("selected_by")
                            else ""))
    return lines
