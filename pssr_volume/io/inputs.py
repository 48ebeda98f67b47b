"""Lazy, read-only input volumes: TIFF files, folders of TIFF slices, zarr and OME-Zarr.

:func:`open_input` inspects a path (headers and metadata only) and returns a small,
picklable :class:`InputVolume`. Pixel data are read on demand with
:meth:`InputVolume.read`, which opens the underlying files once per process and keeps
the open handles in a module-level cache, never in the dataclass, so volumes can be
shipped to Dask worker processes. Nothing is ever written next to the input.
"""

from __future__ import annotations

import logging
import operator
import os
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import tifffile
import zarr
from zarr.storage import LocalStore

from pssr_volume.errors import PssrError

__all__ = ["InputVolume", "clear_handle_cache", "open_input"]

Region = tuple[slice, slice, slice]
VoxelSize = tuple[float, float, float]

TIFF_SUFFIXES = (".tif", ".tiff")
_ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")
_DEPTH_AXES = "ZIQT"  # tifffile axis codes accepted as the z axis of a 3-D stack
_CORRUPT_WORDS = ("corrupt", "truncat", "invalid page offset", "failed to reshape")

_UNIT_NAMES: dict[float, tuple[str, ...]] = {
    1e-3: ("pm", "picometer", "picometre"),
    0.1: ("å", "a", "angstrom", "ångström", "ångstrom"),
    1.0: ("nm", "nanometer", "nanometre"),
    1e3: ("µm", "um", "micron", "micrometer", "micrometre"),
    1e6: ("mm", "millimeter", "millimetre"),
    1e7: ("cm", "centimeter", "centimetre"),
    1e9: ("m", "meter", "metre"),
}
_NM_PER_UNIT = {
    name + plural: factor
    for factor, names in _UNIT_NAMES.items()
    for name in names
    for plural in ("", "s")
}


@dataclass(frozen=True)
class InputVolume:
    """A lazily read, read-only (z, y, x) input volume.

    Attributes
    ----------
    path : str
        Absolute path of what was opened (for an OME-Zarr: the image group).
    kind : str
        ``"tiff"``, ``"tiff-folder"``, ``"zarr"`` or ``"ome-zarr"``.
    shape : tuple of int
        ``(z, y, x)``; a 2-D image has ``z == 1``.
    dtype : str
        NumPy dtype name, e.g. ``"uint8"``; :meth:`read` returns native byte order.
    voxel_size : tuple of float or None
        Voxel size in nm, ``(z, y, x)``, or None when the metadata has none.
    array_path : str or None
        Array inside a zarr group (e.g. ``"0"``), else None.
    notes : tuple of str
        Human-readable warnings found while opening.
    """

    path: str
    kind: str
    shape: tuple[int, int, int]
    dtype: str
    voxel_size: VoxelSize | None
    array_path: str | None = None
    notes: tuple[str, ...] = ()

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
        zs, ys, xs = _check_region(region, self.shape)
        try:
            data = _get_handle(self).read(zs, ys, xs)
        except PssrError:
            raise
        except Exception as exc:
            where = f"[{zs.start}:{zs.stop}, {ys.start}:{ys.stop}, {xs.start}:{xs.stop}]"
            raise _error(f"Could not read region {where} of {self.path}: {_why(exc)}") from exc
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


def open_input(path: str | os.PathLike[str]) -> InputVolume:
    """Open a TIFF file, a folder of TIFF slices, a zarr array or an OME-Zarr image.

    Only headers and metadata are read; every TIFF slice of a folder is checked.

    Parameters
    ----------
    path : str or os.PathLike
        The input to open.

    Returns
    -------
    InputVolume
        The lazily readable volume.

    Raises
    ------
    PssrError
        For a missing, unreadable, corrupt or unsupported input (one-line message).
    """
    p = os.path.abspath(os.path.expanduser(os.fspath(path)))
    try:
        is_dir = os.path.isdir(p)
        os.stat(p)
    except FileNotFoundError:
        raise _error(f"Input {p} does not exist.") from None
    except PermissionError:
        raise _error(f"Input {p} cannot be accessed: permission denied.") from None
    except OSError as exc:
        raise _error(f"Input {p} cannot be accessed: {_why(exc)}") from exc
    if not os.access(p, os.R_OK | (os.X_OK if is_dir else 0)):
        raise _error(f"Input {p} is not readable: permission denied.")
    try:
        return _open_dir(p) if is_dir else _open_file(p)
    except PssrError:
        raise
    except PermissionError as exc:
        raise _error(f"Permission denied while reading {exc.filename or p}.") from exc
    except Exception as exc:
        raise _error(f"Could not open {p}: {_why(exc)}") from exc


def clear_handle_cache() -> None:
    """Close the open file handles that :meth:`InputVolume.read` cached in this process."""
    with _CACHE_LOCK:
        handles = list(_CACHE.values())
        _CACHE.clear()
    for handle in handles:
        handle.close()


# --- opening -----------------------------------------------------------------------------


def _open_file(path: str) -> InputVolume:
    if not path.lower().endswith(TIFF_SUFFIXES):
        suffix = os.path.splitext(path)[1] or "no extension"
        raise _error(
            f"Input {path} has an unsupported format ({suffix}); expected a .tif/.tiff file, "
            "a folder of TIFF slices, a zarr array or an OME-Zarr image."
        )
    with _tiff_file(path) as (tf, _messages):
        series = tf.series[0]
        shape, _, notes = _tiff_layout(series.axes, series.shape, path)
        dtype = _check_dtype(series.dtype, path)
        voxel, more = _tiff_voxel_size(tf, shape[0])
    return InputVolume(path, "tiff", shape, dtype, voxel, None, tuple(notes + more + _messages))


def _open_dir(path: str) -> InputVolume:
    if any(os.path.exists(os.path.join(path, m)) for m in _ZARR_MARKERS):
        return _open_zarr(path)
    files = _list_slices(path)
    if not files:
        raise _error(
            f"Input folder {path} contains no TIFF slices (*.tif, *.tiff) and no zarr "
            "metadata (zarr.json, .zarray, .zgroup)."
        )
    first: tuple[tuple[int, int], str] | None = None
    voxel: VoxelSize | None = None
    notes: list[str] = []
    for file in files:
        with _tiff_file(file) as (tf, messages):
            series = tf.series[0]
            (nz, ny, nx), _, _ = _tiff_layout(series.axes, series.shape, file)
            if nz != 1:
                raise _error(
                    f"TIFF slice {file} holds {nz} images; each file in a TIFF folder must be "
                    "a single 2-D slice."
                )
            this = ((ny, nx), _check_dtype(series.dtype, file))
            if first is None:
                first = this
                voxel, notes = _tiff_voxel_size(tf, len(files))
                notes += messages
        if this != first:
            raise _error(
                f"TIFF slice {file} has (y, x) shape {this[0]} and dtype {this[1]}, but the "
                f"first slice {files[0]} has {first[0]} and {first[1]}; all slices in {path} "
                "must match."
            )
    assert first is not None
    shape = (len(files), *first[0])
    return InputVolume(path, "tiff-folder", shape, first[1], voxel, None, tuple(notes))


def _open_zarr(path: str) -> InputVolume:
    node = _zarr_open(path)
    if isinstance(node, zarr.Group):
        multiscales = _multiscales(node.attrs.asdict())
        if not multiscales:
            names = sorted(name for name, _ in node.arrays())
            hint = f" (arrays here: {', '.join(names)})" if names else ""
            raise _error(
                f"Zarr group {path} has no OME-Zarr multiscales metadata; point at an array "
                f"inside it instead{hint}."
            )
        datasets = multiscales[0].get("datasets") or []
        if not datasets or "path" not in datasets[0]:
            raise _error(f"OME-Zarr {path} lists no datasets in its multiscales metadata.")
        array_path = str(datasets[0]["path"]).strip("/")
        return _ome_volume(path, array_path, multiscales[0], datasets[0])
    parent = _find_ome_parent(path)
    if parent is not None:
        return _ome_volume(*parent)
    shape, notes = _zarr_shape(node.shape, path)
    dtype = _check_dtype(node.dtype, path)
    notes.append("zarr array has no OME-Zarr metadata; voxel size unknown")
    return InputVolume(path, "zarr", shape, dtype, None, None, tuple(notes))


def _ome_volume(
    group: str, array_path: str, ms: Mapping[str, Any], dataset: Mapping[str, Any]
) -> InputVolume:
    where = os.path.join(group, array_path)
    array = _zarr_open(where)
    if not isinstance(array, zarr.Array):
        raise _error(f"OME-Zarr dataset {where} is not a zarr array.")
    axes = ms.get("axes")
    if axes is None:  # NGFF 0.1/0.2: implicit (t, c, z, y, x)
        axes = ["t", "c", "z", "y", "x"][-array.ndim :]
    names = [str(a.get("name", "") if isinstance(a, Mapping) else a).lower() for a in axes]
    units = [a.get("unit") if isinstance(a, Mapping) else None for a in axes]
    if len(names) != array.ndim or names[-2:] != ["y", "x"]:
        raise _error(f"OME-Zarr {group} has unsupported axes {names}; expected (..., y, x).")
    for name, size in zip(names, array.shape, strict=True):
        if name not in ("z", "y", "x") and size != 1:
            raise _error(
                f"OME-Zarr {group} has axis {name!r} of size {size}; only single-channel, "
                "single-timepoint (z, y, x) images are supported."
            )
    if "z" in names and names.index("z") != array.ndim - 3:
        raise _error(f"OME-Zarr {group} has unsupported axis order {names}.")
    shape, notes = _zarr_shape(array.shape, where)
    voxel = None
    scale = _scale(dataset.get("coordinateTransformations"))
    outer = _scale(ms.get("coordinateTransformations"))
    if scale is None or len(scale) != array.ndim:
        notes.append("OME-Zarr dataset has no usable scale transformation; voxel size unknown")
    else:
        if outer is not None and len(outer) == len(scale):
            scale = [a * b for a, b in zip(scale, outer, strict=True)]
        sizes: dict[str, float | None] = {}
        for name in "zyx":
            if name in names:
                factor = _unit_to_nm(units[names.index(name)])
                sizes[name] = None if factor is None else scale[names.index(name)] * factor
        if any(sizes[n] is None for n in sizes):
            notes.append(f"OME-Zarr axes have no length unit ({units}); voxel size unknown")
        else:
            voxel = _finish_voxel(sizes.get("z"), sizes["y"], sizes["x"], shape[0], notes)
    dtype = _check_dtype(array.dtype, where)
    return InputVolume(group, "ome-zarr", shape, dtype, voxel, array_path, tuple(notes))


def _find_ome_parent(path: str) -> tuple[str, str, Mapping[str, Any], Mapping[str, Any]] | None:
    """Find an OME-Zarr group (up to 3 levels up) whose multiscales lists `path`."""
    parent = path
    for _ in range(3):
        parent = os.path.dirname(parent)
        if not any(os.path.exists(os.path.join(parent, m)) for m in _ZARR_MARKERS):
            continue
        try:
            group = zarr.open_group(store=LocalStore(parent, read_only=True), mode="r")
        except Exception:
            continue
        rel = os.path.relpath(path, parent).replace(os.sep, "/")
        for ms in _multiscales(group.attrs.asdict()):
            for dataset in ms.get("datasets") or []:
                if str(dataset.get("path", "")).strip("/") == rel:
                    return parent, rel, ms, dataset
    return None


def _multiscales(attrs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    ome = attrs.get("ome")
    found = ome.get("multiscales") if isinstance(ome, Mapping) else attrs.get("multiscales")
    return [m for m in found if isinstance(m, Mapping)] if isinstance(found, list) else []


def _scale(transforms: Any) -> list[float] | None:
    for t in transforms or []:
        if isinstance(t, Mapping) and t.get("type") == "scale" and "scale" in t:
            return [float(v) for v in t["scale"]]
    return None


def _zarr_open(path: str) -> zarr.Array | zarr.Group:
    return zarr.open(store=LocalStore(path, read_only=True), mode="r")


def _zarr_shape(shape: Sequence[int], path: str) -> tuple[tuple[int, int, int], list[str]]:
    """Map a zarr shape to (z, y, x): last two dims are y, x; z is third-last; rest size 1."""
    if len(shape) == 2:
        return (1, int(shape[0]), int(shape[1])), []
    if len(shape) >= 3 and all(n == 1 for n in shape[:-3]):
        notes = (
            [f"squeezed leading singleton axes of shape {tuple(shape)}"] if len(shape) > 3 else []
        )
        return (int(shape[-3]), int(shape[-2]), int(shape[-1])), notes
    raise _error(
        f"Zarr array {path} has shape {tuple(shape)}; only 2-D (y, x) and 3-D (z, y, x) "
        "arrays are supported."
    )


# --- TIFF --------------------------------------------------------------------------------


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


@contextmanager
def _tiff_file(path: str) -> Iterator[tuple[tifffile.TiffFile, list[str]]]:
    """Open a TIFF for reading; turn tifffile's corruption warnings into a PssrError."""
    logger = logging.getLogger("tifffile")
    collector = _LogCollector()
    logger.addHandler(collector)
    try:
        try:
            tf = tifffile.TiffFile(path)
        except tifffile.TiffFileError as exc:
            raise _error(f"{path} is not a valid TIFF file or is corrupt: {_why(exc)}") from exc
        with tf:
            if not tf.series:
                raise _error(f"TIFF file {path} contains no image data.")
            bad = [m for m in collector.messages if any(w in m.lower() for w in _CORRUPT_WORDS)]
            if bad:
                raise _error(f"TIFF file {path} looks truncated or corrupt: {bad[0]}")
            _check_extent(tf.series[0], path)
            yield tf, [f"tifffile: {m}" for m in collector.messages]
    finally:
        logger.removeHandler(collector)


def _check_extent(series: tifffile.TiffPageSeries, path: str) -> None:
    """Raise if the image data of `series` run past the end of the file (truncation)."""
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        end = max(
            (
                offset + count
                for page in series.pages
                if page is not None
                for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True)
            ),
            default=0,
        )
    size = os.path.getsize(path)
    if end > size:
        raise _error(f"TIFF file {path} is truncated: image data end at byte {end} of {size}.")


def _tiff_layout(
    axes: str, shape: Sequence[int], path: str
) -> tuple[tuple[int, int, int], tuple[int | str, ...], list[str]]:
    """Map a TIFF series to (z, y, x): return the shape, an index template and notes."""
    described = f"axes {axes!r}, shape {tuple(shape)}"
    kept = [(ax, n) for ax, n in zip(axes, shape, strict=True) if n != 1 or ax in "YX"]
    for ax, n in kept:
        if ax in "CS":
            raise _error(
                f"TIFF {path} has {n} colour samples or channels ({described}); only "
                "single-channel greyscale images are supported."
            )
    order = "".join(ax for ax, _ in kept)
    if len(kept) > 3:
        raise _error(
            f"TIFF {path} is a {len(kept)}-D image ({described}); only 2-D images and 3-D "
            "(z, y, x) stacks are supported."
        )
    if order[-2:] != "YX" or (len(order) == 3 and order[0] not in _DEPTH_AXES):
        raise _error(f"TIFF {path} has unsupported axes ({described}).")
    notes = ["treating the TIFF time axis (T) as z"] if order[0] == "T" else []
    depth = order[0] if len(order) == 3 else None
    template = tuple(
        ("z" if ax == depth else ax.lower()) if (n != 1 or ax in "YX") else 0
        for ax, n in zip(axes, shape, strict=True)
    )
    sizes = dict(kept)
    return (sizes.get(depth, 1) if depth else 1, sizes["Y"], sizes["X"]), template, notes


def _tiff_voxel_size(tf: tifffile.TiffFile, nz: int) -> tuple[VoxelSize | None, list[str]]:
    notes: list[str] = []
    if tf.is_ome and tf.ome_metadata:
        root = ET.fromstring(tf.ome_metadata)
        pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
        sizes: dict[str, float | None] = {}
        for ax in "ZYX":
            value = None if pixels is None else pixels.get(f"PhysicalSize{ax}")
            unit = "µm" if pixels is None else pixels.get(f"PhysicalSize{ax}Unit", "µm")
            factor = _unit_to_nm(unit)
            sizes[ax] = None if value is None or factor is None else float(value) * factor
        voxel = _finish_voxel(sizes["Z"], sizes["Y"], sizes["X"], nz, notes)
        if voxel is None:
            notes.append("OME-TIFF has no PhysicalSizeX/Y; voxel size unknown")
        return voxel, notes
    if tf.is_imagej:
        meta = tf.imagej_metadata or {}
        unit = meta.get("unit")
        factor = _unit_to_nm(unit)
        if factor is None:
            what = f"unit {unit!r}" if unit else "no calibration unit"
            notes.append(f"ImageJ TIFF has {what}; voxel size unknown")
            return None, notes
        tags = tf.pages.first.tags
        x, y = (_pixel_size(tags.get(name)) for name in ("XResolution", "YResolution"))
        spacing = meta.get("spacing")
        z = float(spacing) * factor if spacing else None
        voxel = _finish_voxel(
            z, None if y is None else y * factor, None if x is None else x * factor, nz, notes
        )
        if voxel is None:
            notes.append("ImageJ TIFF has no X/YResolution; voxel size unknown")
        return voxel, notes
    notes.append("TIFF has no ImageJ or OME calibration; voxel size unknown")
    return None, notes


def _pixel_size(tag: tifffile.TiffTag | None) -> float | None:
    """Pixel size in the image unit from an X/YResolution tag (pixels per unit)."""
    if tag is None:
        return None
    value = tag.value
    num, den = value if isinstance(value, tuple) else (value, 1)
    return float(den) / float(num) if num and den else None


# --- shared helpers ----------------------------------------------------------------------


def _unit_to_nm(unit: object) -> float | None:
    if not isinstance(unit, str):
        return None
    key = unit.strip().lower().replace("\\u00b5", "µ").replace("\u03bc", "µ")
    return _NM_PER_UNIT.get(key)


def _finish_voxel(
    z: float | None, y: float | None, x: float | None, nz: int, notes: list[str]
) -> VoxelSize | None:
    """Fill in a missing y from x (or x from y) and a missing z from x; round to 9 digits."""
    x, y = (x if x is not None else y), (y if y is not None else x)
    if x is None or y is None or x <= 0 or y <= 0:
        return None
    if z is None or z <= 0:
        z = x
        if nz > 1:
            notes.append(f"z spacing missing; using the x pixel size ({x:g} nm) for z")
    return tuple(float(f"{v:.9g}") for v in (z, y, x))  # type: ignore[return-value]


def _check_dtype(dtype: Any, path: str) -> str:
    dt = np.dtype(dtype)
    if dt.kind not in "biuf":
        raise _error(f"Input {path} has data type {dt}, which is not supported.")
    return dt.name


def _natural_key(name: str) -> tuple[tuple[int | str, ...], str]:
    parts = re.split(r"(\d+)", name.casefold())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def _list_slices(folder: str) -> list[str]:
    with os.scandir(folder) as entries:
        names = [
            e.name
            for e in entries
            if not e.name.startswith(".") and e.name.lower().endswith(TIFF_SUFFIXES) and e.is_file()
        ]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def _check_region(region: Region, shape: tuple[int, int, int]) -> Region:
    if not isinstance(region, tuple) or len(region) != 3:
        raise ValueError(f"region must be a tuple of three slices (z, y, x), got {region!r}")
    out = []
    for s, n, name in zip(region, shape, "zyx", strict=True):
        if not isinstance(s, slice) or s.step not in (None, 1):
            raise ValueError(f"region {name} must be a slice with step 1, got {s!r}")
        start = 0 if s.start is None else operator.index(s.start)
        stop = n if s.stop is None else operator.index(s.stop)
        if not 0 <= start <= stop <= n:
            raise ValueError(f"region {name} range {start}:{stop} is outside 0:{n}")
        out.append(slice(start, stop))
    return out[0], out[1], out[2]


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error(message: str) -> PssrError:
    return PssrError(message.replace("\r", " ").replace("\n", " "))


# --- per-process handle cache ------------------------------------------------------------


class _ArrayHandle:
    """A TIFF memmap, a zarr view of a TIFF (aszarr) or a zarr array, with an index template."""

    def __init__(self, array: Any, template: tuple[int | str, ...], owner: Any = None) -> None:
        self.array, self.template, self.owner = array, template, owner

    def read(self, zs: slice, ys: slice, xs: slice) -> np.ndarray:
        index = {"z": zs, "y": ys, "x": xs}
        data = self.array[tuple(index.get(t, t) for t in self.template)]  # type: ignore[call-overload]
        if "z" in self.template:
            return data
        return np.asarray(data)[None][: zs.stop - zs.start]

    def close(self) -> None:
        if self.owner is not None:
            self.owner.close()


class _FolderHandle:
    """Reads one file per z-slice; no file stays open between reads."""

    def __init__(self, vol: InputVolume) -> None:
        self.files = _list_slices(vol.path)
        self.vol = vol
        if len(self.files) != vol.shape[0]:
            raise _error(
                f"TIFF folder {vol.path} now holds {len(self.files)} slices, not the "
                f"{vol.shape[0]} it held when opened."
            )

    def read(self, zs: slice, ys: slice, xs: slice) -> np.ndarray:
        ny, nx = self.vol.shape[1:]
        out = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), self.vol.dtype)
        for i, file in enumerate(self.files[zs]):
            try:
                mm = tifffile.memmap(file, mode="r")  # uncompressed, contiguous slices
            except ValueError:
                mm = None
            if mm is not None and mm.size == ny * nx and mm.dtype.name == self.vol.dtype:
                out[i] = mm.reshape(ny, nx)[ys, xs]
                del mm
                continue
            with tifffile.TiffFile(file) as tf:
                series = tf.series[0]
                shape, template, _ = _tiff_layout(series.axes, series.shape, file)
                if shape != (1, ny, nx) or series.dtype.name != self.vol.dtype:
                    raise _error(f"TIFF slice {file} changed since {self.vol.path} was opened.")
                out[i] = _ArrayHandle(_aszarr(series), template).read(slice(0, 1), ys, xs)[0]
        return out

    def close(self) -> None:
        pass


def _aszarr(series: tifffile.TiffPageSeries) -> zarr.Array:
    return zarr.open(series.aszarr(multiscales=False), mode="r")


def _make_handle(vol: InputVolume) -> _ArrayHandle | _FolderHandle:
    if vol.kind == "tiff-folder":
        return _FolderHandle(vol)
    if vol.kind == "tiff":
        tf = tifffile.TiffFile(vol.path)
        try:
            series = tf.series[0]
            shape, template, _ = _tiff_layout(series.axes, series.shape, vol.path)
            if shape != vol.shape:
                raise _error(f"TIFF file {vol.path} changed since it was opened.")
            if series.dataoffset is not None:  # uncompressed and contiguous: memory-map
                mm = tifffile.memmap(vol.path, mode="r")
                if mm.shape == tuple(series.shape):
                    tf.close()
                    return _ArrayHandle(mm, template)
            return _ArrayHandle(_aszarr(series), template, owner=tf)
        except BaseException:
            tf.close()
            raise
    if vol.kind in ("zarr", "ome-zarr"):
        where = vol.path if vol.array_path is None else os.path.join(vol.path, vol.array_path)
        array = _zarr_open(where)
        if not isinstance(array, zarr.Array) or _zarr_shape(array.shape, where)[0] != vol.shape:
            raise _error(f"Zarr array {where} changed since it was opened.")
        ndim = array.ndim
        template = ("y", "x") if ndim == 2 else (0,) * (ndim - 3) + ("z", "y", "x")
        return _ArrayHandle(array, template)
    raise ValueError(f"unknown input kind {vol.kind!r}")


_CACHE: dict[tuple[str, str, str | None], _ArrayHandle | _FolderHandle] = {}
_CACHE_LOCK = threading.Lock()


def _reset_cache_after_fork() -> None:
    global _CACHE, _CACHE_LOCK
    _CACHE, _CACHE_LOCK = {}, threading.Lock()  # the parent's handles must not be shared


os.register_at_fork(after_in_child=_reset_cache_after_fork)


def _get_handle(vol: InputVolume) -> _ArrayHandle | _FolderHandle:
    key = (vol.path, vol.kind, vol.array_path)
    with _CACHE_LOCK:
        handle = _CACHE.get(key)
        if handle is None:
            handle = _CACHE[key] = _make_handle(vol)
    return handle
