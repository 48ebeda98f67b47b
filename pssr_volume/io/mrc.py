"""MRC inputs (``.mrc``, ``.rec``, ``.st``, ``.ali``, ``.map``, ``.mrcs``), via mrcfile.

Data are memory-mapped read-only, so a region read touches only its bytes. The
voxel size comes from the header (cell size / grid size, in Ångström, x y z
order), converted to nm (z, y, x); an all-zero header means unknown. The translation
is the header ``origin`` (x, y, z in Å, the position of the first voxel as MRC2014,
mrcfile and ChimeraX read it) when it is not all zero, else ``nxstart``, ``nystart``,
``nzstart`` times the voxel size when those are not all zero, else none. Mode 0
(bytes) is signed in MRC2014, but IMOD writes unsigned bytes unless its header
flag says otherwise: such files open as uint8.
"""

from __future__ import annotations

import warnings

import mrcfile
import numpy as np

from pssr_volume.io.common import (
    ArrayHandle,
    Position,
    VoxelSize,
    check_dtype,
    clean_position,
    error,
    finish_voxel,
    squeeze_shape,
    template_for,
    why,
)
from pssr_volume.io.volume import InputVolume

_IMOD_STAMP = 1146047817  # "IMOD" in the header's extra bytes
_IMOD_SIGNED_BYTES = 1


def _mmap(path: str) -> mrcfile.mrcmemmap.MrcMemmap:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # permissive=False raises on real problems
        return mrcfile.mmap(path, mode="r", permissive=False)


def _unsigned_bytes(header: np.recarray) -> bool:
    """Whether a mode-0 file is IMOD's unsigned bytes (stamp present, signed flag clear)."""
    extra = np.asarray(header.extra2).tobytes()  # header bytes 112-195; IMOD uses 152-159
    order = np.asarray(header.nx).dtype.byteorder
    stamp, flags = np.frombuffer(extra[40:48], dtype=np.dtype("i4").newbyteorder(order))
    return int(stamp) == _IMOD_STAMP and not int(flags) & _IMOD_SIGNED_BYTES


def open_mrc(path: str) -> InputVolume:
    """Open an MRC file (headers only)."""
    try:
        mrc = _mmap(path)
    except (ValueError, OSError, EOFError) as exc:
        raise error(f"{path} is not a valid MRC file or is corrupt: {why(exc)}") from exc
    with mrc:
        data = mrc.data
        if data is None:
            raise error(f"MRC file {path} contains no image data.")
        shape, _ = squeeze_shape(data.shape, path, "MRC data")
        dtype = data.dtype
        notes: list[str] = []
        if int(mrc.header.mode) == 0 and _unsigned_bytes(mrc.header):
            dtype = np.dtype(np.uint8)
            notes.append("IMOD header: mode-0 bytes read as unsigned (uint8)")
        dtype_name = check_dtype(dtype, path)
        vs = mrc.voxel_size
        sizes = [float(vs.z) / 10, float(vs.y) / 10, float(vs.x) / 10]  # Å -> nm
        vz, vy, vx = (v if v > 0 else None for v in sizes)
        voxel = finish_voxel(vz, vy, vx, shape[0], notes)
        if voxel is None:
            notes.append("MRC header has no cell size; voxel size unknown")
        translation = _translation(mrc.header, voxel)
    return InputVolume(path, "mrc", shape, dtype_name, voxel, None, tuple(notes),
                       translation=translation)  # fmt: skip


def _translation(header: np.recarray, voxel: VoxelSize | None) -> Position | None:
    """The header origin (Å, x y z) in nm (z, y, x), else the n*start grid position."""
    origin = header.origin
    found = [float(origin.z) / 10, float(origin.y) / 10, float(origin.x) / 10]
    if any(found):
        return clean_position(found)
    start = [int(header.nzstart), int(header.nystart), int(header.nxstart)]
    if any(start) and voxel is not None:
        return clean_position([n * v for n, v in zip(start, voxel, strict=True)])
    return None


class _UnsignedBytes(ArrayHandle):
    """IMOD's unsigned mode-0 bytes, which mrcfile maps as int8."""

    def read(self, zs: slice, ys: slice, xs: slice) -> np.ndarray:
        return np.asarray(super().read(zs, ys, xs)).view(np.uint8)


def make_handle(vol: InputVolume) -> ArrayHandle:
    """Memory-map the file of `vol` for reading regions (called once per process)."""
    mrc = _mmap(vol.path)
    try:
        data = mrc.data
        if data is None or squeeze_shape(data.shape, vol.path, "MRC data")[0] != vol.shape:
            raise error(f"MRC file {vol.path} changed since it was opened.")
        unsigned = vol.dtype == "uint8" and data.dtype == np.int8
        return (_UnsignedBytes if unsigned else ArrayHandle)(
            data, template_for(data.ndim), owner=mrc
        )
    except BaseException:
        mrc.close()
        raise
