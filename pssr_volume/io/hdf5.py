"""HDF5 inputs, named ``file.h5:/path/to/dataset`` (h5py).

The voxel size comes from the dataset's ``resolution`` attribute (z, y, x in nm,
as CREMI and many EM tools store it; a ``unit`` attribute overrides nm) or from
``element_size_um`` (z, y, x in µm, as ilastik and Fiji write it); the translation
from CREMI's ``offset`` attribute (z, y, x in nm, or in ``unit``). A file with a
single image dataset opens without naming it. Files are opened read-only and
without HDF5 file locking (which fails on many cluster file systems).
"""

from __future__ import annotations

import contextlib

import h5py
import numpy as np

from pssr_volume.io.common import (
    ArrayHandle,
    check_dtype,
    error,
    first_attr,
    position_from_list,
    squeeze_note,
    squeeze_shape,
    template_for,
    voxel_from_list,
    why,
    zyx_chunks,
)
from pssr_volume.io.volume import InputVolume

with contextlib.suppress(ImportError):  # optional: Blosc, LZ4, Zstd... filters for EM files
    import hdf5plugin  # noqa: F401


def _open_file(path: str) -> h5py.File:
    try:
        return h5py.File(path, "r", locking=False)
    except (TypeError, ValueError):  # an HDF5 library without the locking switch
        return h5py.File(path, "r")


def _image_datasets(f: h5py.File) -> list[str]:
    found: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 and obj.dtype.kind in "biuf":
            found.append("/" + name)

    f.visititems(visit)
    return found


def open_hdf5(path: str, dataset: str | None) -> InputVolume:
    """Open one dataset of an HDF5 file (the only image dataset when `dataset` is None)."""
    try:
        f = _open_file(path)
    except OSError as exc:
        raise error(f"{path} is not a readable HDF5 file: {why(exc)}") from exc
    with f:
        if dataset is None:
            candidates = _image_datasets(f)
            if len(candidates) != 1:
                listed = ", ".join(candidates[:8]) or "none"
                raise error(
                    f"HDF5 file {path} holds {len(candidates)} image datasets ({listed}); "
                    f"name one as {path}:/path/to/dataset."
                )
            dataset = candidates[0]
        if dataset not in f:
            raise error(f"HDF5 file {path} has no dataset {dataset!r}.")
        node = f[dataset]
        if not isinstance(node, h5py.Dataset):
            inside = ", ".join(sorted(node.keys())[:8]) if isinstance(node, h5py.Group) else ""
            raise error(
                f"{path}:{dataset} is an HDF5 group, not a dataset"
                + (f" (it holds: {inside})." if inside else ".")
            )
        where = f"{path}:{dataset}"
        shape, lead = squeeze_shape(node.shape, where, "HDF5 dataset")
        notes = squeeze_note(node.shape)
        dtype = check_dtype(node.dtype, where)
        if node.size:
            try:  # decode one chunk now: a missing compression filter fails here, clearly
                node[(0,) * node.ndim]
            except Exception as exc:
                raise error(
                    f"Cannot decode HDF5 dataset {where}: {why(exc)} (a compression filter "
                    "may be missing; try pip install hdf5plugin)."
                ) from exc
        attrs = dict(node.attrs)
        voxel = None
        found = first_attr(attrs, "resolution", "element_size_um")
        if found is None:
            notes.append("HDF5 dataset has no resolution attribute; voxel size unknown")
        else:
            name, value = found
            unit = "um" if name == "element_size_um" else _text(attrs.get("unit"))
            voxel = voxel_from_list(value, "zyx", unit, shape[0], notes,
                                    f"HDF5 attribute {name!r}")  # fmt: skip
        translation = None
        if "offset" in attrs:
            translation = position_from_list(attrs["offset"], "zyx", _text(attrs.get("unit")),
                                             notes, "HDF5 attribute 'offset'")  # fmt: skip
        chunks = zyx_chunks(node.chunks, lead)
    return InputVolume(path, "hdf5", shape, dtype, voxel, dataset, tuple(notes), chunks,
                       translation=translation)  # fmt: skip


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.item())
    return value if isinstance(value, str) else None


def make_handle(vol: InputVolume) -> ArrayHandle:
    """Open the dataset of `vol` for reading regions (called once per process)."""
    f = _open_file(vol.path)
    try:
        node = f[vol.array_path]
        where = f"{vol.path}:{vol.array_path}"
        if not isinstance(node, h5py.Dataset) or (
            squeeze_shape(node.shape, where, "HDF5 dataset")[0] != vol.shape
        ):
            raise error(f"HDF5 dataset {where} changed since it was opened.")
        return ArrayHandle(node, template_for(node.ndim), owner=f)
    except BaseException:
        f.close()
        raise
