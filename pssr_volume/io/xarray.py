"""An OME-Zarr level as a lazy :class:`xarray.DataArray` with coordinates in nm.

>>> import pssr_volume
>>> image = pssr_volume.open_ome_zarr("restored.ome.zarr")          # level 0
>>> image.sel(z=100.0, method="nearest").sel(x=slice(0, 2000)).compute()

Coordinates come from the NGFF ``scale`` and ``translation`` of the level (and of
the multiscale), converted to nanometres from the axes' units, so
``coord = translation + scale * index``. Pixels are read by dask on demand.
"""

from __future__ import annotations

import os
from typing import Any, cast

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from zarr.storage import LocalStore

from pssr_volume.errors import PssrError
from pssr_volume.io.common import unit_to_nm
from pssr_volume.io.ome_zarr import read_provenance
from pssr_volume.io.zarr_input import (
    check_ome_axes,
    find_ome_parent,
    is_zarr,
    level_transform,
    multiscales,
)

__all__ = ["open_ome_zarr"]


def open_ome_zarr(path: str | os.PathLike[str], level: int | str = 0) -> xr.DataArray:
    """Open one level of an OME-Zarr image, lazily, as a (z, y, x) DataArray.

    Parameters
    ----------
    path : str or os.PathLike
        The OME-Zarr image group (NGFF 0.4 on zarr v2 or 0.5 on zarr v3).
    level : int or str
        Index into the multiscale's datasets (0 = full resolution; negative
        counts from the coarsest) or a dataset path such as ``"2"``.

    Returns
    -------
    xarray.DataArray
        Dims ``("z", "y", "x")`` (a 2-D image gets a single z), dask-backed,
        float64 coordinates in nm (in the stored units if the axes have no
        known length unit, noted in ``attrs["units"]``); ``attrs`` hold the
        voxel size, the level path and the ``pssr_volume`` provenance if any.

    Raises
    ------
    PssrError
        If `path` is not an OME-Zarr image, or `level` does not exist.
    """
    group_path = os.path.abspath(os.fspath(path))
    if not is_zarr(group_path):
        raise PssrError(f"{group_path} is not a zarr store")
    group = zarr.open(store=LocalStore(group_path, read_only=True), mode="r")
    if isinstance(group, zarr.Array):  # a level path: use its parent image
        parent = find_ome_parent(group_path)
        if parent is None:
            raise PssrError(f"{group_path} is a zarr array without OME-Zarr metadata")
        group_path, level = parent[0], parent[1]
        group = zarr.open_group(store=LocalStore(group_path, read_only=True), mode="r")
    ms_list = multiscales(group.attrs.asdict())
    if not ms_list:
        raise PssrError(f"{group_path} has no OME-Zarr multiscales metadata")
    ms = ms_list[0]
    datasets = list(ms.get("datasets") or [])
    ds = _pick(datasets, level, group_path)
    array = cast(zarr.Array, group[str(ds["path"])])  # an OME-Zarr dataset path names an array
    names, scale, shift, units = level_transform(ms, ds, array.ndim)
    check_ome_axes(names, array.shape, group_path)
    data = da.from_zarr(array)
    lead = array.ndim - 3
    if lead < 0:
        data, names, units = data[None], ["z", *names], [units[0], *units]
        scale = None if scale is None else [1.0, *scale]
        shift = None if shift is None else [0.0, *shift]
        lead = 0
    data = data[(0,) * lead]
    names, units = names[lead:], units[lead:]
    scale = [1.0] * 3 if scale is None else scale[lead:]
    shift = [0.0] * 3 if shift is None else shift[lead:]
    unit_factors = [unit_to_nm(u) for u in units]
    known = all(f is not None for f in unit_factors)
    factors = [f if known and f is not None else 1.0 for f in unit_factors]
    coords = {
        name: (name, shift[i] * factors[i] + scale[i] * factors[i] * np.arange(data.shape[i]),
               {"units": "nm" if known else "unknown"})
        for i, name in enumerate(("z", "y", "x"))
    }
    attrs: dict[str, Any] = {
        "units": "nm" if known else "unknown",
        "voxel_size": tuple(float(s * f) for s, f in zip(scale, factors)),
        "level": str(ds["path"]),
        "source": group_path,
    }
    prov = read_provenance(group_path)
    if prov:
        attrs["pssr_volume"] = prov
    return xr.DataArray(data, dims=("z", "y", "x"), coords=coords, attrs=attrs,
                        name=str(ms.get("name") or "image"))


def _pick(datasets: list[Any], level: int | str, where: str) -> Any:
    paths = [str(d.get("path", "")) for d in datasets]
    if isinstance(level, str) and not level.lstrip("-").isdigit():
        if level.strip("/") in paths:
            return datasets[paths.index(level.strip("/"))]
        raise PssrError(f"OME-Zarr {where} has no level {level!r} (levels: {', '.join(paths)})")
    if isinstance(level, str) and level in paths:
        return datasets[paths.index(level)]
    index = int(level)
    if not -len(datasets) <= index < len(datasets):
        raise PssrError(f"OME-Zarr {where} has {len(datasets)} levels; level {index} does not "
                        "exist")
    return datasets[index]
