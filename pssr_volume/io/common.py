"""Helpers shared by the input readers: errors, units, voxel sizes, shapes, regions.

Nothing here opens a file. The format modules (:mod:`~pssr_volume.io.tiff`,
:mod:`~pssr_volume.io.zarr_input`, :mod:`~pssr_volume.io.hdf5`,
:mod:`~pssr_volume.io.mrc`, :mod:`~pssr_volume.io.n5`) build on these.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pssr_volume.errors import PssrError
from pssr_volume.types import Shape3

Region = tuple[slice, slice, slice]
VoxelSize = tuple[float, float, float]
Position = tuple[float, float, float]

# every UDUNITS-2 length unit that NGFF allows (axes' "unit"), with common abbreviations
_UNIT_NAMES: dict[float, tuple[str, ...]] = {
    1e-15: ("ym", "yoctometer", "yoctometre"),
    1e-12: ("zm", "zeptometer", "zeptometre"),
    1e-9: ("am", "attometer", "attometre"),
    1e-6: ("fm", "femtometer", "femtometre"),
    1e-3: ("pm", "picometer", "picometre"),
    0.1: ("å", "a", "angstrom", "ångström", "ångstrom"),
    1.0: ("nm", "nanometer", "nanometre"),
    1e3: ("µm", "um", "micron", "micrometer", "micrometre"),
    1e6: ("mm", "millimeter", "millimetre"),
    1e7: ("cm", "centimeter", "centimetre"),
    1e8: ("dm", "decimeter", "decimetre"),
    1e9: ("m", "meter", "metre"),
    1e11: ("hm", "hectometer", "hectometre"),
    1e12: ("km", "kilometer", "kilometre"),
    1e15: ("megameter", "megametre"),
    1e18: ("gigameter", "gigametre"),
    1e21: ("terameter", "terametre"),
    1e24: ("petameter", "petametre"),
    1e27: ("exameter", "exametre"),
    1e30: ("zettameter", "zettametre"),
    1e33: ("yottameter", "yottametre"),
    2.54e7: ("in", "inch"),
    3.048e8: ("ft", "foot"),
    9.144e8: ("yd", "yard"),
    1.609344e12: ("mi", "mile"),
    3.0856775814913673e25: ("pc", "parsec"),
}
_NM_PER_UNIT = {
    name + plural: factor
    for factor, names in _UNIT_NAMES.items()
    for name in names
    for plural in ("", "s")
} | {"feet": 3.048e8, "inches": 2.54e7}


def error(message: str) -> PssrError:
    """A :class:`PssrError` whose message is guaranteed to be one line."""
    return PssrError(message.replace("\r", " ").replace("\n", " "))


def why(exc: BaseException) -> str:
    """``"TypeName: message"`` of an exception, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unit_to_nm(unit: object) -> float | None:
    """Nanometres per `unit` (``"µm"``, ``"angstrom"``, ``"nanometer"``, ...), or None."""
    if not isinstance(unit, str):
        return None
    key = unit.strip().lower().replace("\\u00b5", "µ").replace("\u03bc", "µ")
    return _NM_PER_UNIT.get(key)


def finish_voxel(
    z: float | None, y: float | None, x: float | None, nz: int, notes: list[str]
) -> VoxelSize | None:
    """Fill in a missing y from x (or x from y) and a missing z from x; round to 9 digits.

    Returns None when neither x nor y is known (or one is not positive).
    """
    x, y = (x if x is not None else y), (y if y is not None else x)
    if x is None or y is None or x <= 0 or y <= 0:
        return None
    if z is None or z <= 0:
        z = x
        if nz > 1:
            notes.append(f"z spacing missing; using the x pixel size ({x:g} nm) for z")
    return tuple(float(f"{v:.9g}") for v in (z, y, x))  # type: ignore[return-value]


def unit_factors(unit: object, n: int) -> list[float] | None:
    """Nanometres per unit for each of `n` numbers, or None for an unknown unit.

    `unit` is None or ``""`` (nanometres), a unit name, or a list of names with
    the last `n` belonging to the numbers (funlib's ``units``; channel axes first).
    """
    if isinstance(unit, list | tuple):
        if len(unit) < n:
            return None
        found = [1.0 if u in (None, "") else unit_to_nm(u) for u in list(unit)[len(unit) - n:]]
        factors = [f for f in found if f is not None]
        return factors if len(factors) == n else None
    factor = 1.0 if unit in (None, "") else unit_to_nm(unit)
    return None if factor is None else [factor] * n


def _numbers(values: Any) -> list[float] | None:
    try:
        numbers = [float(v) for v in np.asarray(values, dtype=float).ravel()]
    except (TypeError, ValueError):
        return None
    return numbers if all(np.isfinite(numbers)) else None


def voxel_from_list(
    values: Any, order: str, unit: object, nz: int, notes: list[str], what: str
) -> VoxelSize | None:
    """Voxel size from a list attribute such as CREMI's ``resolution``.

    Parameters
    ----------
    values : Any
        The attribute value: 2 or 3 numbers (or more, the spatial ones last in
        `order`).
    order : str
        ``"zyx"`` (CREMI, HDF5, zarr) or ``"xyz"`` (N5, MRC) for a 3-entry list.
    unit : object
        The unit of the numbers (see :func:`unit_factors`; ``None``: nanometres).
    nz, notes
        As for :func:`finish_voxel`.
    what : str
        Where the numbers came from, for the notes.
    """
    sizes = _in_nm_zyx(values, order, unit, notes, what, "voxel size unknown")
    if sizes is None:
        return None
    z = sizes[0] if len(sizes) == 3 else None
    return finish_voxel(z, sizes[-2], sizes[-1], nz, notes)


def position_from_list(
    values: Any, order: str, unit: object, notes: list[str], what: str
) -> Position | None:
    """A translation in nm (z, y, x) from a list attribute such as CREMI's ``offset``.

    Read like :func:`voxel_from_list` (same `order` and `unit` rules); a 2-entry
    list (y, x) sits at z = 0. None, with a note, when the value is unusable.
    """
    nm = _in_nm_zyx(values, order, unit, notes, what, "offset ignored")
    if nm is None:
        return None
    return clean_position([0.0, *nm] if len(nm) == 2 else nm)


def _in_nm_zyx(values: Any, order: str, unit: object, notes: list[str], what: str,
               consequence: str) -> list[float] | None:
    """A 2- or 3-entry list attribute in nm, (z,) y, x; None with a note when unusable."""
    numbers = _numbers(values)
    if numbers is None or len(numbers) not in (2, 3):
        notes.append(f"{what} is not a list of 2 or 3 numbers ({values!r}); {consequence}")
        return None
    factors = unit_factors(unit, len(numbers))
    if factors is None:
        notes.append(f"{what} has an unknown unit {unit!r}; {consequence}")
        return None
    nm = [v * f for v, f in zip(numbers, factors, strict=True)]
    return nm[::-1] if order == "xyz" else nm


def clean_position(values: Sequence[float]) -> Position | None:
    """Three finite coordinates in nm rounded to 1e-6 nm (no ``-0.0``), else None."""
    out = [float(v) for v in values]
    if len(out) != 3 or not all(np.isfinite(out)):
        return None
    return tuple(round(v, 6) + 0.0 for v in out)  # type: ignore[return-value]


def check_dtype(dtype: Any, path: str) -> str:
    """The NumPy name of a supported (integer or float) data type.

    Boolean volumes (masks) are refused: no command restores, degrades or scores them.
    """
    dt = np.dtype(dtype)
    if dt.kind == "b":
        raise error(f"Input {path} has unsupported dtype bool (a mask?); only integer and "
                    "float volumes are supported: save it as uint8 first.")
    if dt.kind not in "iuf":
        raise error(f"Input {path} has data type {dt}, which is not supported.")
    return dt.name


def squeeze_shape(shape: Sequence[int], path: str, what: str = "Zarr array") -> tuple[Shape3, int]:
    """Map a C-order array shape to (z, y, x): last two dims are y, x; z is third-last.

    Leading axes must have size 1. Returns the shape and the number of leading
    singleton axes (0 for 3-D, -1 for 2-D arrays).
    """
    if len(shape) == 2:
        return (1, int(shape[0]), int(shape[1])), -1
    if len(shape) >= 3 and all(n == 1 for n in shape[:-3]):
        return (int(shape[-3]), int(shape[-2]), int(shape[-1])), len(shape) - 3
    raise error(
        f"{what} {path} has shape {tuple(shape)}; only 2-D (y, x) and 3-D (z, y, x) "
        "arrays are supported."
    )


def squeeze_note(shape: Sequence[int]) -> list[str]:
    """A note for arrays whose leading singleton axes were dropped."""
    return [f"squeezed leading singleton axes of shape {tuple(shape)}"] if len(shape) > 3 else []


def zyx_chunks(chunks: Sequence[int] | None, lead: int) -> Shape3 | None:
    """The (z, y, x) part of a chunk shape given the leading-axis count of
    :func:`squeeze_shape`."""
    if not chunks:
        return None
    c = [int(v) for v in chunks]
    return (1, c[0], c[1]) if lead < 0 else (c[-3], c[-2], c[-1])


def check_region(region: Region, shape: Shape3) -> Region:
    """Validate a (z, y, x) region of step-1 slices inside `shape`; fill in None bounds."""
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


def first_attr(attrs: Mapping[str, Any], *names: str) -> tuple[str, Any] | None:
    """The first of `names` present in `attrs`, with its value."""
    for name in names:
        if name in attrs:
            return name, attrs[name]
    return None


class ArrayHandle:
    """Reads (z, y, x) regions of an array-like through an index template.

    The template has one entry per array axis: ``"z"``, ``"y"``, ``"x"`` or a
    fixed integer index (a squeezed singleton axis). Without a ``"z"`` entry
    the array is a 2-D image, read as one section.
    """

    def __init__(self, array: Any, template: tuple[int | str, ...], owner: Any = None) -> None:
        self.array, self.template, self.owner = array, template, owner

    def read(self, zs: slice, ys: slice, xs: slice) -> np.ndarray:
        """Return the region as an array (possibly a view)."""
        index: dict[int | str, slice] = {"z": zs, "y": ys, "x": xs}
        data = self.array[tuple(index.get(t, t) for t in self.template)]
        if "z" in self.template:
            return data
        return np.asarray(data)[None][: zs.stop - zs.start]

    def close(self) -> None:
        """Close the file this handle keeps open, if any."""
        if self.owner is not None:
            self.owner.close()


def template_for(ndim: int) -> tuple[int | str, ...]:
    """The :class:`ArrayHandle` template of a C-order array of `ndim` dimensions."""
    return ("y", "x") if ndim == 2 else (0,) * (ndim - 3) + ("z", "y", "x")
