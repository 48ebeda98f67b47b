"""N5 inputs (BigDataViewer, Paintera, n5-viewer and saalfeldlab exports), via TensorStore.

N5 lists dimensions fastest first (x, y, z); volumes here are (z, y, x), so the
axes are reversed. A dataset opens by its folder; a multiscale group (with an
``s0`` dataset, as Paintera and BigDataViewer write) opens at ``s0``.

Voxel size and translation:

* a BigDataViewer export (``root.n5/setupN/timepointT/sK`` with an XML beside the root
  that names it): the XML's ``voxelSize`` and unit govern, and its registration gives
  the translation (:mod:`pssr_volume.io.bdv`);
* otherwise the first found, on the dataset or a parent group, of ``pixelResolution``
  ``{"dimensions": [x, y, z], "unit": "nm"}`` (n5-viewer) or ``resolution`` ``[x, y, z]``
  (Paintera; nm unless a ``unit`` attribute says otherwise), times the dataset's
  ``downsamplingFactors`` when found on a parent. Paintera's ``offset`` ``[x, y, z]``
  beside it (same unit) is the translation of s0; a level adds ``(f - 1) / 2`` s0 voxels.

An N5 at an ``s3://``, ``gs://`` or ``http(s)://`` URL is read through tensorstore's kvstore
of that store; its attributes are read as there, but no BigDataViewer XML is looked for
beside it (that needs a folder listing).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from pssr_volume.io import stores
from pssr_volume.io.bdv import N5Resolution, bdv_geometry, find_view, layout
from pssr_volume.io.common import (
    Position,
    VoxelSize,
    check_dtype,
    error,
    position_from_list,
    squeeze_shape,
    voxel_from_list,
    why,
)
from pssr_volume.io.kvstores import kvstore_spec
from pssr_volume.io.volume import InputVolume

ATTRIBUTES = "attributes.json"


def is_n5(path: str) -> bool:
    """Whether the folder `path` looks like an N5 container, group or dataset: it or
    its ``s0`` has an ``attributes.json``, or it lies in a folder named ``*.n5``. At a URL:
    it or its ``s0`` has an ``attributes.json``."""
    if stores.is_url(path):
        return any(stores.is_file(stores.child(path, *p, ATTRIBUTES)) for p in ((), ("s0",)))
    if any(os.path.isfile(os.path.join(path, *p, ATTRIBUTES)) for p in ((), ("s0",))):
        return True
    parts = os.path.normpath(path).split(os.sep)
    return any(part.lower().endswith(".n5") for part in parts)


def _attrs(path: str) -> dict[str, Any]:
    if stores.is_url(path):
        return _url_attrs(path)
    file = os.path.join(path, ATTRIBUTES)
    if not os.path.isfile(file):
        return {}
    try:
        with open(file, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError) as exc:
        raise error(f"N5 attributes {file} cannot be read: {why(exc)}") from exc
    return value if isinstance(value, dict) else {}


def _url_attrs(path: str) -> dict[str, Any]:
    file = stores.child(path, ATTRIBUTES)
    try:
        value = json.loads(stores.read_bytes(file))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise error(f"N5 attributes {file} cannot be read: {why(exc)}") from exc
    return value if isinstance(value, dict) else {}


def _is_dataset(attrs: Mapping[str, Any]) -> bool:
    return "dimensions" in attrs and "dataType" in attrs


def _datasets_below(path: str, depth: int = 3) -> list[str]:
    found: list[str] = []
    if stores.is_url(path):  # no listing over HTTP: name none
        return found
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
    voxel, translation = _geometry(where, shape[0], notes)
    if voxel is None and not any("voxel size" in n for n in notes):
        notes.append("N5 has no pixelResolution/resolution attribute; voxel size unknown")
    block = _attrs(where).get("blockSize")
    chunks = None
    if isinstance(block, list) and len(block) >= 2:
        zyx = [int(v) for v in block[::-1]]
        chunks = (1, zyx[-2], zyx[-1]) if len(zyx) == 2 else (zyx[-3], zyx[-2], zyx[-1])
    return InputVolume(path, "n5", shape, dtype, voxel, array_path, tuple(notes), chunks,
                       translation=translation)  # fmt: skip


def _open_store(where: str) -> Any:
    import tensorstore as ts

    spec = {"driver": "n5", "kvstore": kvstore_spec(where)}
    try:
        return ts.open(spec, read=True, open=True).result()
    except Exception as exc:
        raise error(f"Cannot open N5 dataset {where}: {why(exc)}") from exc


def _factors(attrs: Mapping[str, Any]) -> list[float] | None:
    f = attrs.get("downsamplingFactors")
    if isinstance(f, list) and f and all(isinstance(v, int | float) for v in f):
        return [float(v) for v in f]
    return None


def _find_resolution(where: str) -> tuple[N5Resolution, Mapping[str, Any], list[float]] | None:
    """The first ``pixelResolution``/``resolution`` on the dataset or a parent group, scaled
    to the dataset's level; with the attributes it was found in and the scale used."""
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
            scale = factors if levels_up and factors is not None else []
            if scale:
                with contextlib.suppress(TypeError, ValueError):
                    values = [float(v) * f for v, f in zip(values, scale)]
            return N5Resolution(node, values, unit), attrs, scale
        if "n5" in attrs or levels_up >= 3:
            return None
        if stores.is_url(node):
            up = stores.parent(node)
            if up is None or not stores.is_file(stores.child(up, ATTRIBUTES)):
                return None
            node, levels_up = str(up), levels_up + 1
            continue
        parent = os.path.dirname(node)
        if parent == node or not os.path.isfile(os.path.join(parent, ATTRIBUTES)):
            return None
        node, levels_up = parent, levels_up + 1


def _geometry(where: str, nz: int, notes: list[str]) -> tuple[VoxelSize | None, Position | None]:
    found = _find_resolution(where)
    attr = None if found is None else found[0]
    view = None if stores.is_url(where) else find_view(where)
    if view is not None and view.size is not None:
        setup_group = os.path.dirname(os.path.dirname(os.path.normpath(where)))
        setup = _attrs(setup_group).get("downsamplingFactors")
        scale = [1.0, 1.0, 1.0]
        if isinstance(setup, list) and view.level < len(setup) and isinstance(
            setup[view.level], list
        ):
            scale = [float(v) for v in setup[view.level]]
        return bdv_geometry(view, scale, attr, nz, notes)
    if found is None:
        return None, None
    attr, attrs, scale = found
    voxel = voxel_from_list(attr.values, "xyz", attr.unit, nz, notes,
                            f"N5 resolution in {attr.node}")  # fmt: skip
    if layout(where) is not None and attr.unit is None:
        notes.append(f"N5 resolution in {attr.node} has no unit and no BigDataViewer XML "
                     "names one; read as nm")  # fmt: skip
    return voxel, _paintera_offset(attrs, attr, scale, notes)


def _paintera_offset(
    attrs: Mapping[str, Any], attr: N5Resolution, scale: list[float], notes: list[str]
) -> Position | None:
    """Paintera's ``offset`` (x, y, z, world units like ``resolution``) beside the
    resolution; a level ``sK`` adds ``(f - 1) / 2`` full-resolution voxels, as Paintera
    does (N5Helpers.considerDownsampling)."""
    if "offset" not in attrs:
        return None
    offset = attrs["offset"]
    if scale:
        with contextlib.suppress(TypeError, ValueError):
            offset = [float(o) + (f - 1) / 2 * float(v) / f
                      for o, v, f in zip(offset, attr.values, scale, strict=True)]  # fmt: skip
    return position_from_list(offset, "xyz", attr.unit, notes,
                              f"N5 attribute 'offset' in {attr.node}")  # fmt: skip


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
