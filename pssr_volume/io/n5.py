"""N5 inputs (BigDataViewer, Paintera, n5-viewer and saalfeldlab exports), via TensorStore.

N5 lists dimensions fastest first (x, y, z); volumes here are (z, y, x), so the
axes are reversed. A dataset opens by its folder; a multiscale group (with an
``s0`` dataset, as Paintera and BigDataViewer write) opens at ``s0``.

Voxel size, first found of:

* ``pixelResolution`` ``{"dimensions": [x, y, z], "unit": "nm"}`` (n5-viewer);
* ``resolution`` ``[x, y, z]`` (Paintera; nm unless a ``unit`` attribute says otherwise),
  on the dataset or a parent group, times the dataset's ``downsamplingFactors``;
* the ``voxelSize`` of the ``ViewSetup`` in a BigDataViewer XML next to the container,
  times the level's ``downsamplingFactors``.
"""

from __future__ import annotations

import contextlib
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

import numpy as np

from pssr_volume.io.common import (
    VoxelSize,
    check_dtype,
    error,
    squeeze_shape,
    unit_to_nm,
    voxel_from_list,
    why,
)
from pssr_volume.io.volume import InputVolume

ATTRIBUTES = "attributes.json"


def is_n5(path: str) -> bool:
    """Whether the folder `path` looks like an N5 container, group or dataset: it or
    its ``s0`` has an ``attributes.json``, or it lies in a folder named ``*.n5``."""
    if any(os.path.isfile(os.path.join(path, *p, ATTRIBUTES)) for p in ((), ("s0",))):
        return True
    parts = os.path.normpath(path).split(os.sep)
    return any(part.lower().endswith(".n5") for part in parts)


def _attrs(path: str) -> dict[str, Any]:
    file = os.path.join(path, ATTRIBUTES)
    if not os.path.isfile(file):
        return {}
    try:
        with open(file, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError) as exc:
        raise error(f"N5 attributes {file} cannot be read: {why(exc)}") from exc
    return value if isinstance(value, dict) else {}


def _is_dataset(attrs: Mapping[str, Any]) -> bool:
    return "dimensions" in attrs and "dataType" in attrs


def _datasets_below(path: str, depth: int = 3) -> list[str]:
    found: list[str] = []
    for root, dirs, _ in os.walk(path):
        rel = os.path.relpath(root, path)
        if rel != "." and _is_dataset(_attrs(root)):
            found.append(rel.replace(os.sep, "/"))
            dirs.clear()
        elif rel.count(os.sep) + 1 >= depth:
            dirs.clear()
        dirs.sort()
    return found


def open_n5(path: str) -> InputVolume:
    """Open an N5 dataset, or the ``s0`` level of a multiscale N5 group."""
    attrs = _attrs(path)
    array_path = None
    if not _is_dataset(attrs):
        if _is_dataset(_attrs(os.path.join(path, "s0"))):
            array_path = "s0"
        else:
            listed = ", ".join(_datasets_below(path)[:8])
            raise error(
                f"N5 group {path} is not a dataset and has no s0 level; point at a dataset "
                + (f"inside it ({listed})." if listed else "(none found below it).")
            )
    where = path if array_path is None else os.path.join(path, array_path)
    store = _open_store(where)
    dims = list(store.shape)[::-1]  # N5 x, y, z -> z, y, x
    shape, _ = squeeze_shape(dims, where, "N5 dataset")
    dtype = check_dtype(store.dtype.numpy_dtype, where)
    notes: list[str] = []
    voxel = _voxel_size(where, shape[0], notes)
    if voxel is None and not any("voxel size" in n for n in notes):
        notes.append("N5 has no pixelResolution/resolution attribute; voxel size unknown")
    block = _attrs(where).get("blockSize")
    chunks = None
    if isinstance(block, list) and len(block) >= 2:
        zyx = [int(v) for v in block[::-1]]
        chunks = (1, zyx[-2], zyx[-1]) if len(zyx) == 2 else (zyx[-3], zyx[-2], zyx[-1])
    return InputVolume(path, "n5", shape, dtype, voxel, array_path, tuple(notes), chunks)


def _open_store(where: str) -> Any:
    import tensorstore as ts

    spec = {"driver": "n5", "kvstore": {"driver": "file", "path": where}}
    try:
        return ts.open(spec, read=True, open=True).result()
    except Exception as exc:
        raise error(f"Cannot open N5 dataset {where}: {why(exc)}") from exc


def _factors(attrs: Mapping[str, Any]) -> list[float] | None:
    f = attrs.get("downsamplingFactors")
    if isinstance(f, list) and f and all(isinstance(v, int | float) for v in f):
        return [float(v) for v in f]
    return None


def _voxel_size(where: str, nz: int, notes: list[str]) -> VoxelSize | None:
    own = _attrs(where)
    factors = _factors(own)
    node, levels_up = where, 0
    while True:
        attrs = own if levels_up == 0 else _attrs(node)
        pr = attrs.get("pixelResolution")
        if isinstance(pr, Mapping) and "dimensions" in pr:
            values, unit = pr["dimensions"], pr.get("unit")
        elif "resolution" in attrs:
            values, unit = attrs["resolution"], attrs.get("unit")
        else:
            values = None
        if values is not None:
            if levels_up and factors is not None:
                with contextlib.suppress(TypeError, ValueError):
                    values = [float(v) * f for v, f in zip(values, factors)]
            return voxel_from_list(values, "xyz", unit, nz, notes, f"N5 resolution in {node}")
        if "n5" in attrs or levels_up >= 3:
            break
        parent = os.path.dirname(node)
        if parent == node or not os.path.isfile(os.path.join(parent, ATTRIBUTES)):
            break
        node, levels_up = parent, levels_up + 1
    return _bdv_voxel_size(where, nz, notes)


def _bdv_voxel_size(where: str, nz: int, notes: list[str]) -> VoxelSize | None:
    """BigDataViewer layout ``<root>.n5/setupN/timepointT/sK`` with an XML beside the root."""
    parts = os.path.normpath(where).split(os.sep)
    if len(parts) < 4 or not parts[-3].startswith("setup") or not parts[-1].startswith("s"):
        return None
    root = os.sep.join(parts[:-3])
    try:
        setup, level = int(parts[-3][5:]), int(parts[-1][1:])
    except ValueError:
        return None
    factors = _attrs(os.path.join(root, parts[-3])).get("downsamplingFactors")
    scale = [1.0, 1.0, 1.0]
    if isinstance(factors, list) and level < len(factors) and isinstance(factors[level], list):
        scale = [float(v) for v in factors[level]]
    folder = os.path.dirname(root)
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(".xml"):
            continue
        found = _xml_voxel(os.path.join(folder, name), os.path.basename(root), setup)
        if found is not None:
            values, unit = found
            values = [v * s for v, s in zip(values, scale)]
            return voxel_from_list(values, "xyz", unit, nz, notes, f"BigDataViewer XML {name}")
    return None


def _xml_voxel(xml: str, n5_name: str, setup: int) -> tuple[list[float], str] | None:
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError):
        return None
    n5 = root.find(".//ImageLoader/n5")
    if n5 is None or os.path.basename((n5.text or "").strip().rstrip("/")) != n5_name:
        return None
    for vs in root.iter("ViewSetup"):
        if (vs.findtext("id") or "").strip() != str(setup):
            continue
        size = vs.findtext("voxelSize/size")
        unit = (vs.findtext("voxelSize/unit") or "").strip()
        if size is None or unit_to_nm(unit) is None:
            return None
        try:
            return [float(v) for v in size.split()], unit
        except ValueError:
            return None
    return None


class _N5Handle:
    """A TensorStore view of the dataset with its axes reversed to (z, y, x)."""

    def __init__(self, vol: InputVolume) -> None:
        where = vol.path if vol.array_path is None else os.path.join(vol.path, vol.array_path)
        store = _open_store(where)
        dims = list(store.shape)[::-1]
        if squeeze_shape(dims, where, "N5 dataset")[0] != vol.shape:
            raise error(f"N5 dataset {where} changed since it was opened.")
        self.view = store.T
        self.lead = len(dims) - 3

    def read(self, zs: slice, ys: slice, xs: slice) -> np.ndarray:
        if self.lead < 0:
            return np.asarray(self.view[ys, xs].read().result())[None][: zs.stop - zs.start]
        index = (0,) * self.lead + (zs, ys, xs)
        return np.asarray(self.view[index].read().result())

    def close(self) -> None:
        pass


def make_handle(vol: InputVolume) -> _N5Handle:
    """Open the N5 dataset of `vol` for reading regions (called once per process)."""
    return _N5Handle(vol)
