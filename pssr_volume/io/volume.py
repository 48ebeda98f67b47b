"""The :class:`InputVolume` record and the per-process cache of open file handles.

An :class:`InputVolume` is small and picklable: it holds what was learnt from the
metadata, never an open file. :meth:`InputVolume.read` asks the format module
named by :attr:`InputVolume.kind` for a handle the first time a process reads
the volume, and keeps it in a module-level cache (reset in forked children).
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from pssr_volume.errors import PssrError
from pssr_volume.io.common import Position, Region, VoxelSize, check_region, error, why
from pssr_volume.types import Shape3

__all__ = ["InputVolume", "clear_handle_cache"]

# kind -> module with ``make_handle(vol)``; imported on first read, so h5py, mrcfile
# and tensorstore load only in processes that read such inputs.
_HANDLE_MODULES = {
    "tiff": "pssr_volume.io.tiff",
    "tiff-folder": "pssr_volume.io.tiff",
    "zarr": "pssr_volume.io.zarr_input",
    "ome-zarr": "pssr_volume.io.zarr_input",
    "hdf5": "pssr_volume.io.hdf5",
    "mrc": "pssr_volume.io.mrc",
    "n5": "pssr_volume.io.n5",
}


class Handle(Protocol):
    """An open input: reads (z, y, x) regions; closed by :func:`clear_handle_cache`."""

    def read(self, zs: slice, ys: slice, xs: slice) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class InputVolume:
    """A lazily read, read-only (z, y, x) input volume.

    Attributes
    ----------
    path : str
        Absolute path of what was opened: the file, the TIFF folder, the zarr
        array or OME-Zarr image group, or the N5 dataset or group.
    kind : str
        ``"tiff"``, ``"tiff-folder"``, ``"zarr"``, ``"ome-zarr"``, ``"hdf5"``,
        ``"mrc"`` or ``"n5"``.
    shape : tuple of int
        ``(z, y, x)``; a 2-D image has ``z == 1``.
    dtype : str
        NumPy dtype name, e.g. ``"uint8"``; :meth:`read` returns native byte order.
    voxel_size : tuple of float or None
        Voxel size in nm, ``(z, y, x)``, or None when the metadata has none.
    array_path : str or None
        The array inside `path`: an OME-Zarr level (``"0"``), an HDF5 dataset
        (``"/volumes/raw"``) or an N5 dataset below a group (``"s0"``); else None.
    notes : tuple of str
        Human-readable warnings found while opening.
    chunks : tuple of int or None
        Storage chunk shape ``(z, y, x)`` when the format is chunked.
    origin : tuple of int
        Where this volume starts in the file (a region of interest, see :meth:`with_roi`);
        ``shape`` is then the region's shape.
    file_shape : tuple of int or None
        The whole array's shape when this is a region of it.
    translation : tuple of float or None
        Where the centre of the array's first voxel lies, in nm ``(z, y, x)`` (the NGFF
        ``translation`` convention), from the input's metadata (an OME-Zarr translation,
        an N5/CREMI/funlib ``offset``, a BigDataViewer affine, an MRC origin); None when
        it has none. It is the file array's position: a region of interest
        (:meth:`with_roi`) starts ``origin`` voxels further on and keeps this value.
    """

    path: str
    kind: str
    shape: Shape3
    dtype: str
    voxel_size: VoxelSize | None
    array_path: str | None = None
    notes: tuple[str, ...] = ()
    chunks: Shape3 | None = None
    origin: Shape3 = (0, 0, 0)
    file_shape: Shape3 | None = None
    translation: Position | None = None

    def with_roi(self, roi: tuple[tuple[int, int], ...]) -> InputVolume:
        """This volume restricted to ``roi`` (``(start, stop)`` per axis, in its voxels).

        Raises
        ------
        PssrError
            If the region is empty or reaches outside the volume.
        """
        if len(roi) != 3 or any(not 0 <= a < b <= n for (a, b), n in zip(roi, self.shape)):
            box = ",".join(f"{a}:{b}" for a, b in roi)
            raise PssrError(f"--roi {box} is not inside the input's shape "
                            f"{'x'.join(map(str, self.shape))} (z, y, x), or is empty")
        origin = tuple(o + a for o, (a, _) in zip(self.origin, roi))
        shape = tuple(b - a for a, b in roi)
        return replace(self, shape=shape, origin=origin,  # type: ignore[arg-type]
                       file_shape=self.file_shape or self.shape)

    def whole(self) -> InputVolume:
        """The whole file array this volume is a region of (itself when it is not a region):
        where a region's halo is read from (docs/ENGINE.md, "Regions of interest")."""
        if self.file_shape is None:
            return self
        return replace(self, shape=self.file_shape, origin=(0, 0, 0), file_shape=None)

    @property
    def source(self) -> str:
        """What a user would type to open this volume again (``file.h5:/dataset`` for HDF5)."""
        if self.array_path is None:
            return self.path
        if self.kind == "hdf5":
            return f"{self.path}:{self.array_path}"
        return os.path.join(self.path, self.array_path)

    def read(self, region: Region) -> np.ndarray:
        """Read one region without loading the rest of the volume.

        Parameters
        ----------
        region : tuple of slice
            ``(z, y, x)`` slices with step 1 inside the volume bounds (None start/stop
            mean the full extent).

        Returns
        -------
        numpy.ndarray
            A new C-contiguous ``(z, y, x)`` array of :attr:`dtype`.

        Raises
        ------
        ValueError
            If `region` is malformed or out of bounds (a programming error).
        PssrError
            If the data can no longer be read (file changed, removed or corrupt).
        """
        zs, ys, xs = check_region(region, self.shape)
        oz, oy, ox = self.origin
        if oz or oy or ox:
            zs, ys, xs = (slice(s.start + o, s.stop + o) for s, o in zip((zs, ys, xs), self.origin))
        try:
            data = _get_handle(self.whole()).read(zs, ys, xs)
        except PssrError:
            raise
        except Exception as exc:
            where = f"[{zs.start}:{zs.stop}, {ys.start}:{ys.stop}, {xs.start}:{xs.stop}]"
            raise error(f"Could not read region {where} of {self.source}: {why(exc)}") from exc
        out = np.asarray(data)
        dtype = np.dtype(self.dtype)
        if not (out.flags.c_contiguous and out.flags.writeable and out.dtype == dtype):
            out = np.array(out, dtype=dtype, order="C")
        return out

    def describe(self) -> str:
        """Return a one-line summary: kind, shape, dtype and voxel size."""
        kind = self.kind if self.array_path is None else f"{self.kind} (array {self.array_path!r})"
        voxel = "unknown"
        if self.voxel_size is not None:
            voxel = "(" + ", ".join(f"{v:g}" for v in self.voxel_size) + ") nm"
        return (
            f"{kind}: shape (z, y, x) = {self.shape}, {self.dtype}, voxel size (z, y, x) = {voxel}"
        )


def clear_handle_cache() -> None:
    """Close the open file handles that :meth:`InputVolume.read` cached in this process."""
    with _CACHE_LOCK:
        handles = list(_CACHE.values())
        _CACHE.clear()
    for handle in handles:
        handle.close()


_CACHE: dict[tuple[str, str, str | None], Handle] = {}
_CACHE_LOCK = threading.Lock()


def _reset_cache_after_fork() -> None:
    global _CACHE, _CACHE_LOCK
    _CACHE, _CACHE_LOCK = {}, threading.Lock()  # the parent's handles must not be shared


os.register_at_fork(after_in_child=_reset_cache_after_fork)


def _get_handle(vol: InputVolume) -> Handle:
    key = (vol.path, vol.kind, vol.array_path)
    with _CACHE_LOCK:
        handle = _CACHE.get(key)
        if handle is None:
            if vol.kind not in _HANDLE_MODULES:
                raise ValueError(f"unknown input kind {vol.kind!r}")
            module = importlib.import_module(_HANDLE_MODULES[vol.kind])
            handle = _CACHE[key] = module.make_handle(vol)
    return handle
