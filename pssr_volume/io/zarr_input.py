"""Zarr inputs: plain zarr arrays (v2 and v3) and OME-Zarr images (NGFF 0.1-0.5).

An OME-Zarr group opens at its first (full-resolution) level; any level opens by
its own path (``image.ome.zarr/2``), with that level's voxel size and translation
(the level's ``scale`` and ``translation`` transformations, then the multiscale's
own, in the axes' units). A bioformats2raw root (``bioformats2raw.layout``) opens
its first image (``x.zarr/0``, or the first of ``OME``'s ``series``).

A plain array takes its voxel size from a ``resolution`` or ``voxel_size``
attribute and its translation from ``offset`` (z, y, x in nm, as funlib, daisy and
CREMI-style tools store them; a ``unit`` or funlib ``units`` attribute overrides
nm). funlib.persistence writes ``offset`` as an OME-Zarr ``translation`` unchanged,
so both name the same point.

Any of these may lie at an ``s3://``, ``gs://`` or ``http(s)://`` URL (read through zarr's
``FsspecStore``, :mod:`pssr_volume.io.stores`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import zarr

from pssr_volume.io import stores
from pssr_volume.io.common import (
    ArrayHandle,
    Position,
    VoxelSize,
    check_dtype,
    clean_position,
    error,
    finish_voxel,
    first_attr,
    position_from_list,
    squeeze_note,
    squeeze_shape,
    template_for,
    unit_to_nm,
    voxel_from_list,
    zyx_chunks,
)
from pssr_volume.io.volume import InputVolume

ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")


def is_zarr(path: str) -> bool:
    """Whether the folder `path` holds zarr (v2 or v3) metadata."""
    if stores.is_url(path):
        return any(stores.is_file(stores.child(path, m)) for m in ZARR_MARKERS)
    return any(os.path.exists(os.path.join(path, m)) for m in ZARR_MARKERS)


def dataset_path(group: str, dataset: Mapping[str, Any]) -> str:
    """A multiscale dataset's ``path``, checked to name an array inside the image's group:
    relative, without ``..``, ``.``, empty parts, a scheme or a backslash (NGFF paths are
    keys below the group; anything else would read outside the image)."""
    raw = dataset.get("path")
    text = str(raw).strip("/") if isinstance(raw, str | int) else ""
    parts = text.split("/")
    if not text or str(raw).startswith("/") or "\\" in text or ":" in text \
            or any(p in ("", ".", "..") for p in parts):
        raise error(f"OME-Zarr {group} lists a dataset path {raw!r} that does not name an "
                    "array inside the image (NGFF dataset paths are relative keys below its "
                    "group); refusing to read outside it.")
    return text


def zarr_open(path: str) -> zarr.Array | zarr.Group:
    """Open a zarr array or group read-only."""
    return zarr.open(store=stores.zarr_store(path, read_only=True), mode="r")


def open_zarr(path: str) -> InputVolume:
    """Open a zarr array, an OME-Zarr image group or one level of it."""
    node = zarr_open(path)
    if isinstance(node, zarr.Group):
        ms_list = multiscales(node.attrs.asdict())
        if not ms_list and is_bioformats2raw(node.attrs.asdict()):
            return _open_bioformats2raw(path)
        if not ms_list:
            names = sorted(name for name, _ in node.arrays())
            hint = f" (arrays here: {', '.join(names)})" if names else ""
            raise error(
                f"Zarr group {path} has no OME-Zarr multiscales metadata; point at an array "
                f"inside it instead{hint}."
            )
        datasets = ms_list[0].get("datasets") or []
        if not datasets or "path" not in datasets[0]:
            raise error(f"OME-Zarr {path} lists no datasets in its multiscales metadata.")
        array_path = dataset_path(path, datasets[0])
        return _ome_volume(path, array_path, ms_list[0], datasets[0])
    parent = find_ome_parent(path)
    if parent is not None:
        return _ome_volume(*parent)
    shape, lead = squeeze_shape(node.shape, path)
    notes = squeeze_note(node.shape)
    dtype = check_dtype(node.dtype, path)
    voxel = translation = None
    attrs = node.attrs.asdict()
    unit = attrs["unit"] if "unit" in attrs else attrs.get("units")
    found = first_attr(attrs, "resolution", "voxel_size")
    if found is not None:
        name, value = found
        voxel = voxel_from_list(value, "zyx", unit, shape[0], notes,
                                f"zarr attribute {name!r}")  # fmt: skip
    else:
        notes.append("zarr array has no OME-Zarr metadata or resolution attribute; "
                     "voxel size unknown")  # fmt: skip
    if "offset" in attrs:
        translation = position_from_list(attrs["offset"], "zyx", unit, notes,
                                         "zarr attribute 'offset'")  # fmt: skip
    chunks = zyx_chunks(node.chunks, lead)
    return InputVolume(path, "zarr", shape, dtype, voxel, None, tuple(notes), chunks,
                       translation=translation)  # fmt: skip


def level_transform(
    ms: Mapping[str, Any], dataset: Mapping[str, Any], ndim: int
) -> tuple[list[str], list[float] | None, list[float] | None, list[object]]:
    """Axis names, scale, translation and units of one OME-Zarr level.

    The dataset's and the multiscale's own ``coordinateTransformations`` are
    combined (scale multiplied, translation added after scaling). Scale or
    translation is None when absent or of the wrong length.
    """
    axes = ms.get("axes")
    if axes is None:  # NGFF 0.1/0.2: implicit (t, c, z, y, x)
        axes = ["t", "c", "z", "y", "x"][-ndim:]
    names = [str(a.get("name", "") if isinstance(a, Mapping) else a).lower() for a in axes]
    units = [a.get("unit") if isinstance(a, Mapping) else None for a in axes]
    scale = _transform(dataset.get("coordinateTransformations"), "scale")
    shift = _transform(dataset.get("coordinateTransformations"), "translation")
    outer_scale = _transform(ms.get("coordinateTransformations"), "scale")
    outer_shift = _transform(ms.get("coordinateTransformations"), "translation")
    if scale is not None and len(scale) != ndim:
        scale = None
    if shift is not None and len(shift) != ndim:
        shift = None
    if outer_scale is not None and len(outer_scale) == ndim:
        if scale is not None:
            scale = [a * b for a, b in zip(scale, outer_scale, strict=True)]
        if shift is not None:
            shift = [a * b for a, b in zip(shift, outer_scale, strict=True)]
    if outer_shift is not None and len(outer_shift) == ndim:
        shift = [a + b for a, b in zip(shift or [0.0] * ndim, outer_shift, strict=True)]
    return names, scale, shift, units


def check_ome_axes(names: list[str], shape: tuple[int, ...], group: str) -> None:
    """Refuse OME-Zarr axes other than (..., z, y, x) with singleton extra axes."""
    ndim = len(shape)
    if len(names) != ndim or names[-2:] != ["y", "x"]:
        raise error(f"OME-Zarr {group} has unsupported axes {names}; expected (..., y, x).")
    for name, size in zip(names, shape, strict=True):
        if name not in ("z", "y", "x") and size != 1:
            raise error(
                f"OME-Zarr {group} has axis {name!r} of size {size}; only single-channel, "
                "single-timepoint (z, y, x) images are supported."
            )
    if "z" in names and names.index("z") != ndim - 3:
        raise error(f"OME-Zarr {group} has unsupported axis order {names}.")


def _ome_volume(
    group: str, array_path: str, ms: Mapping[str, Any], dataset: Mapping[str, Any]
) -> InputVolume:
    where = os.path.join(group, array_path)
    array = zarr_open(where)
    if not isinstance(array, zarr.Array):
        raise error(f"OME-Zarr dataset {where} is not a zarr array.")
    names, scale, shift, units = level_transform(ms, dataset, array.ndim)
    check_ome_axes(names, array.shape, group)
    shape, lead = squeeze_shape(array.shape, where)
    notes = squeeze_note(array.shape)
    voxel: VoxelSize | None = None
    if scale is None:
        notes.append("OME-Zarr dataset has no usable scale transformation; voxel size unknown")
    else:
        sizes: dict[str, float | None] = {}
        for name in "zyx":
            if name in names:
                factor = unit_to_nm(units[names.index(name)])
                sizes[name] = None if factor is None else scale[names.index(name)] * factor
        if any(sizes[n] is None for n in sizes):
            notes.append(f"OME-Zarr axes have no length unit ({units}); voxel size unknown")
        else:
            voxel = finish_voxel(sizes.get("z"), sizes["y"], sizes["x"], shape[0], notes)
    translation = _ome_translation(names, shift, units, notes)
    dtype = check_dtype(array.dtype, where)
    chunks = zyx_chunks(array.chunks, lead)
    return InputVolume(group, "ome-zarr", shape, dtype, voxel, array_path, tuple(notes), chunks,
                       translation=translation)  # fmt: skip


def _ome_translation(
    names: list[str], shift: list[float] | None, units: list[object], notes: list[str]
) -> Position | None:
    """The (z, y, x) part of a level's translation in nm (z = 0 for a 2-D image)."""
    if shift is None:
        return None
    nm = {"z": 0.0}
    for name in "zyx":
        if name in names:
            i = names.index(name)
            factor = unit_to_nm(units[i])
            if factor is None:
                if any(shift[names.index(n)] for n in "zyx" if n in names):
                    notes.append(f"OME-Zarr translation {shift} has no length unit ({units}); "
                                 "translation ignored")  # fmt: skip
                return None
            nm[name] = shift[i] * factor
    return clean_position([nm["z"], nm["y"], nm["x"]])


def find_ome_parent(path: str) -> tuple[str, str, Mapping[str, Any], Mapping[str, Any]] | None:
    """Find an OME-Zarr group (up to 3 levels up) whose multiscales lists `path`.

    Returns ``(group path, level path, multiscale, dataset)`` or None.
    """
    parent: str | None = path
    for _ in range(3):
        up = stores.parent(parent) if parent is not None else None
        parent = None if up is None else str(up)
        if parent is None or not is_zarr(parent):
            continue
        try:
            group = zarr.open_group(store=stores.zarr_store(parent, read_only=True), mode="r")
        except Exception:
            continue
        rel = (path[len(parent):].strip("/") if stores.is_url(path)
               else os.path.relpath(path, parent).replace(os.sep, "/"))
        for ms in multiscales(group.attrs.asdict()):
            for dataset in ms.get("datasets") or []:
                if str(dataset.get("path", "")).strip("/") == rel:
                    return parent, rel, ms, dataset
    return None


def is_bioformats2raw(attrs: Mapping[str, Any]) -> bool:
    """Whether group attributes mark a bioformats2raw root (NGFF 0.4 or 0.5 style)."""
    ome = attrs.get("ome")
    inner = ome if isinstance(ome, Mapping) else {}
    return "bioformats2raw.layout" in attrs or "bioformats2raw.layout" in inner


def _bioformats2raw_series(path: str) -> list[str]:
    """The images of a bioformats2raw root: ``OME``'s ``series`` attribute, else the
    groups ``0``, ``1``, ... (the layout's rule when ``series`` is absent)."""
    series: Any = None
    if is_zarr(os.path.join(path, "OME")):
        try:
            attrs = zarr_open(os.path.join(path, "OME")).attrs.asdict()
        except Exception:
            attrs = {}
        ome = attrs.get("ome")
        series = (ome if isinstance(ome, Mapping) else attrs).get("series")
    if isinstance(series, list) and series:
        return [str(s).strip("/") for s in series]
    found: list[str] = []
    while is_zarr(os.path.join(path, str(len(found)))):
        found.append(str(len(found)))
    return found


def _open_bioformats2raw(path: str) -> InputVolume:
    series = [s for s in _bioformats2raw_series(path) if is_zarr(os.path.join(path, s))]
    if not series:
        raise error(f"bioformats2raw root {path} holds no image group (expected {path}/0).")
    image = os.path.join(path, series[0])
    vol = open_zarr(image)
    note = f"bioformats2raw root: opened its image {series[0]!r} ({image})"
    if len(series) > 1:
        listed = ", ".join(series[:8]) + (", ..." if len(series) > 8 else "")
        note += (f"; the root holds {len(series)} images ({listed}): to open another, "
                 f"name it, e.g. {os.path.join(path, series[1])}")
    return replace(vol, notes=(note, *vol.notes))


def multiscales(attrs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``multiscales`` list of NGFF 0.5 (``attrs["ome"]``) or 0.4 group attributes."""
    ome = attrs.get("ome")
    found = ome.get("multiscales") if isinstance(ome, Mapping) else attrs.get("multiscales")
    return [m for m in found if isinstance(m, Mapping)] if isinstance(found, list) else []


def _transform(transforms: Any, kind: str) -> list[float] | None:
    for t in transforms or []:
        if isinstance(t, Mapping) and t.get("type") == kind and kind in t:
            return [float(v) for v in t[kind]]
    return None


def make_handle(vol: InputVolume) -> ArrayHandle:
    """Open the zarr array of `vol` for reading regions (called once per process)."""
    where = vol.path if vol.array_path is None else os.path.join(vol.path, vol.array_path)
    array = zarr_open(where)
    if not isinstance(array, zarr.Array) or squeeze_shape(array.shape, where)[0] != vol.shape:
        raise error(f"Zarr array {where} changed since it was opened.")
    return ArrayHandle(array, template_for(array.ndim))
