"""TIFF inputs: single files (multi-page, ImageJ, OME-TIFF) and folders of TIFF slices;
and TIFF stacks written section by section (:func:`write_tiff_stack`).

Uncompressed contiguous data are memory-mapped; anything else is read through
tifffile's zarr view, which decodes only the pages and strips a region needs.
Voxel sizes come from OME-XML ``PhysicalSize*`` or ImageJ calibration.
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import tifffile
import zarr

from pssr_volume.io.common import (
    ArrayHandle,
    Shape3,
    VoxelSize,
    check_dtype,
    error,
    finish_voxel,
    unit_to_nm,
    why,
)
from pssr_volume.io.volume import InputVolume

TIFF_SUFFIXES = (".tif", ".tiff")
_DEPTH_AXES = "ZIQT"  # tifffile axis codes accepted as the z axis of a 3-D stack
_CORRUPT_WORDS = ("corrupt", "truncat", "invalid page offset", "failed to reshape")


def open_tiff(path: str) -> InputVolume:
    """Open a (multi-page, ImageJ or OME) TIFF file."""
    with _tiff_file(path) as (tf, messages):
        series = tf.series[0]
        shape, _, notes = _tiff_layout(series.axes, series.shape, path)
        dtype = check_dtype(series.dtype, path)
        voxel, more = _tiff_voxel_size(tf, shape[0])
    return InputVolume(path, "tiff", shape, dtype, voxel, None, tuple(notes + more + messages))


def open_tiff_folder(path: str) -> InputVolume:
    """Open a folder of single-slice TIFF files, in natural order (2 before 10)."""
    files = list_slices(path)
    if not files:
        raise error(
            f"Input folder {path} contains no TIFF slices (*.tif, *.tiff), no zarr "
            "metadata (zarr.json, .zarray, .zgroup) and no N5 attributes.json."
        )
    first: tuple[tuple[int, int], str] | None = None
    voxel: VoxelSize | None = None
    notes: list[str] = []
    for file in files:
        with _tiff_file(file) as (tf, messages):
            series = tf.series[0]
            (nz, ny, nx), _, _ = _tiff_layout(series.axes, series.shape, file)
            if nz != 1:
                raise error(
                    f"TIFF slice {file} holds {nz} images; each file in a TIFF folder must be "
                    "a single 2-D slice."
                )
            this = ((ny, nx), check_dtype(series.dtype, file))
            if first is None:
                first = this
                voxel, notes = _tiff_voxel_size(tf, len(files))
                notes += messages
        if this != first:
            raise error(
                f"TIFF slice {file} has (y, x) shape {this[0]} and dtype {this[1]}, but the "
                f"first slice {files[0]} has {first[0]} and {first[1]}; all slices in {path} "
                "must match."
            )
    assert first is not None
    shape = (len(files), *first[0])
    return InputVolume(path, "tiff-folder", shape, first[1], voxel, None, tuple(notes))


def natural_key(name: str) -> tuple[tuple[int | str, ...], str]:
    """Sort key that orders embedded numbers by value: ``2.tif`` before ``10.tif``."""
    parts = re.split(r"(\d+)", name.casefold())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def list_slices(folder: str) -> list[str]:
    """The TIFF files of `folder` (hidden files skipped), in natural order."""
    with os.scandir(folder) as entries:
        names = [
            e.name
            for e in entries
            if not e.name.startswith(".") and e.name.lower().endswith(TIFF_SUFFIXES) and e.is_file()
        ]
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


# --- metadata ----------------------------------------------------------------------------


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
            raise error(f"{path} is not a valid TIFF file or is corrupt: {why(exc)}") from exc
        with tf:
            if not tf.series:
                raise error(f"TIFF file {path} contains no image data.")
            bad = [m for m in collector.messages if any(w in m.lower() for w in _CORRUPT_WORDS)]
            if bad:
                raise error(f"TIFF file {path} looks truncated or corrupt: {bad[0]}")
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
        raise error(f"TIFF file {path} is truncated: image data end at byte {end} of {size}.")


def _tiff_layout(
    axes: str, shape: Sequence[int], path: str
) -> tuple[Shape3, tuple[int | str, ...], list[str]]:
    """Map a TIFF series to (z, y, x): return the shape, an index template and notes."""
    described = f"axes {axes!r}, shape {tuple(shape)}"
    if len(set(axes)) < len(axes) and len(axes) >= 2 and all(n == 1 for n in shape[:-2]):
        axes = "Q" * (len(axes) - 2) + "YX"  # tifffile calls a 1x1x1 image's axes 'XYX'
    kept = [(ax, n) for ax, n in zip(axes, shape, strict=True) if n != 1 or ax in "YX"]
    notes = []
    if "".join(ax for ax, _ in kept) == "CYX":
        # tifffile.imwrite(..., imagej=True) of a 3-D array without axes= labels the first
        # axis as channels: for greyscale EM that is nearly always a stack of sections
        kept[0] = ("Z", kept[0][1])
        axes = axes.replace("C", "Z")
        notes.append(f"the TIFF labels its {kept[0][1]} planes as channels (C) and has no z "
                     "axis; reading them as sections (z)")
    for ax, n in kept:
        if ax in "CS":
            raise error(
                f"TIFF {path} has {n} colour samples or channels ({described}); only "
                "single-channel greyscale images are supported."
            )
    order = "".join(ax for ax, _ in kept)
    if len(kept) > 3:
        raise error(
            f"TIFF {path} is a {len(kept)}-D image ({described}); only 2-D images and 3-D "
            "(z, y, x) stacks are supported."
        )
    if order[-2:] != "YX" or (len(order) == 3 and order[0] not in _DEPTH_AXES):
        raise error(f"TIFF {path} has unsupported axes ({described}).")
    if order[0] == "T":
        notes.append("treating the TIFF time axis (T) as z")
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
            unit: str | None = "µm" if pixels is None else pixels.get(f"PhysicalSize{ax}Unit", "µm")
            factor = unit_to_nm(unit)
            sizes[ax] = None if value is None or factor is None else float(value) * factor
        voxel = finish_voxel(sizes["Z"], sizes["Y"], sizes["X"], nz, notes)
        if voxel is None:
            notes.append("OME-TIFF has no PhysicalSizeX/Y; voxel size unknown")
        return voxel, notes
    if tf.is_imagej:
        meta = tf.imagej_metadata or {}
        unit = meta.get("unit")
        factor = unit_to_nm(unit)
        if factor is None:
            what = f"unit {unit!r}" if unit else "no calibration unit"
            notes.append(f"ImageJ TIFF has {what}; voxel size unknown")
            return None, notes
        tags = tf.pages.first.tags
        x, y = (_pixel_size(tags.get(name)) for name in ("XResolution", "YResolution"))
        spacing = meta.get("spacing")
        z = float(spacing) * factor if spacing else None
        voxel = finish_voxel(
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


# --- reading -----------------------------------------------------------------------------


class _FolderHandle:
    """Reads one file per z-slice; no file stays open between reads."""

    def __init__(self, vol: InputVolume) -> None:
        self.files = list_slices(vol.path)
        self.vol = vol
        if len(self.files) != vol.shape[0]:
            raise error(
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
                    raise error(f"TIFF slice {file} changed since {self.vol.path} was opened.")
                out[i] = ArrayHandle(_aszarr(series), template).read(slice(0, 1), ys, xs)[0]
        return out

    def close(self) -> None:
        pass


def _aszarr(series: tifffile.TiffPageSeries) -> zarr.Array:
    # a single-level series store opens as an Array, never a Group
    return cast(zarr.Array, zarr.open(series.aszarr(multiscales=False), mode="r"))


def make_handle(vol: InputVolume) -> ArrayHandle | _FolderHandle:
    """Open a TIFF file or folder for reading regions (called once per process)."""
    if vol.kind == "tiff-folder":
        return _FolderHandle(vol)
    tf = tifffile.TiffFile(vol.path)
    try:
        series = tf.series[0]
        shape, template, _ = _tiff_layout(series.axes, series.shape, vol.path)
        if shape != vol.shape:
            raise error(f"TIFF file {vol.path} changed since it was opened.")
        if series.dataoffset is not None:  # uncompressed and contiguous: memory-map
            mm = tifffile.memmap(vol.path, mode="r")
            if mm.shape == tuple(series.shape):
                tf.close()
                return ArrayHandle(mm, template)
        return ArrayHandle(_aszarr(series), template, owner=tf)
    except BaseException:
        tf.close()
        raise


IMAGEJ_DTYPES = ("uint8", "uint16", "int16", "float32")  # what ImageJ TIFFs can hold


def write_tiff_stack(path: Path, sections: Iterator[np.ndarray], shape: tuple[int, int, int],
                     dtype: str, voxel: tuple[float, float, float] | None) -> None:
    """Write sections as an ImageJ TIFF stack (voxel size in nm if known).

    Data types ImageJ cannot hold (float64, int32, uint32, int8, ...) are written
    unchanged as an OME-TIFF instead, with the voxel size as ``PhysicalSize*``. Sections
    are consumed lazily; on any failure, Ctrl-C included, the partial file is removed.
    """
    if np.dtype(dtype).kind not in "iuf":
        raise error(f"cannot write {path}: data type {dtype} is not supported in a TIFF "
                    "stack here (integer or float only)")
    if path.is_dir():
        raise error(f"cannot write {path}: it is a folder")
    try:
        _write_stack(path, sections, shape, dtype, voxel)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _write_stack(path: Path, sections: Iterator[np.ndarray], shape: tuple[int, int, int],
                 dtype: str, voxel: tuple[float, float, float] | None) -> None:
    if np.dtype(dtype).name not in IMAGEJ_DTYPES:
        meta: dict[str, Any] = {"axes": "ZYX"}
        if voxel is not None:
            for axis, size in zip("ZYX", voxel, strict=True):
                meta |= {f"PhysicalSize{axis}": size, f"PhysicalSize{axis}Unit": "nm"}
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        with tifffile.TiffWriter(path, ome=True, bigtiff=nbytes > 2**32 - 2**25) as tif:
            tif.write(sections, shape=shape, dtype=dtype, photometric="minisblack",
                      metadata=meta)
        return
    kw: dict[str, Any] = {"metadata": {"axes": "ZYX"}}
    if voxel is not None:
        kw = {"resolution": (1 / voxel[2], 1 / voxel[1]),
              "metadata": {"spacing": voxel[0], "unit": "nm", "axes": "ZYX"}}
    with tifffile.TiffWriter(path, imagej=True) as tif:
        tif.write(sections, shape=shape, dtype=dtype, photometric="minisblack", **kw)
