"""The BigDataViewer XML beside an N5 export: voxel size, its unit, and the translation.

BigDataViewer writes ``<root>.n5/setupN/timepointT/sK`` next to ``<root>.xml``. The XML's
``ViewSetup`` holds the voxel size with its unit; the ``ViewRegistration`` of
(timepoint, setup) holds the affine from s0 voxels (centres at integer coordinates) to
the world. The export also puts a unitless ``resolution`` (in the XML's unit) on the
timepoint group for Paintera, so the XML's unit governs:

* XML unit known: voxel size from the XML; N5 attributes without a unit, or with a
  different value, get a note.
* XML without a length unit (``pixel``, empty): the N5 attributes' size when they name a
  unit, else unknown; either way a note.
* translation: the affine's translation column, when the affine is axis-aligned. One world
  unit is ``voxel_size / scale`` (Fiji exports the voxel size in the XML's unit as the
  scale, BigStitcher a scale normalised to x = 1), so the translation in nm is
  ``t * voxel_nm / a_dd``; level ``sK`` adds ``(f - 1) / 2`` s0 voxels (BigDataViewer's
  mipmap transform).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from pssr_volume.io.common import (
    Position,
    VoxelSize,
    clean_position,
    unit_to_nm,
    voxel_from_list,
)

__all__ = ["BdvView", "N5Resolution", "bdv_geometry", "find_view"]


@dataclass(frozen=True)
class BdvView:
    """What the XML says about one (setup, timepoint) of an N5 export."""

    xml: str
    setup: int
    level: int
    size: list[float] | None  # voxelSize, x y z, in `unit`
    unit: str
    affine: np.ndarray | None  # 3x4, s0 voxels -> world


class N5Resolution(NamedTuple):
    """A ``resolution``/``pixelResolution`` attribute found on the dataset or a parent."""

    node: str
    values: Any  # x y z, scaled to the opened level
    unit: object  # None when the attributes name no unit


def layout(where: str) -> tuple[str, int, int, int] | None:
    """``(root, setup, timepoint, level)`` of ``<root>/setupN/timepointT/sK``, else None."""
    parts = os.path.normpath(where).split(os.sep)
    if len(parts) < 4 or not parts[-3].startswith("setup") or not parts[-1].startswith("s"):
        return None
    try:
        setup, level = int(parts[-3][5:]), int(parts[-1][1:])
    except ValueError:
        return None
    tp = parts[-2][9:] if parts[-2].startswith("timepoint") else ""
    return os.sep.join(parts[:-3]), setup, int(tp) if tp.isdigit() else 0, level


def find_view(where: str) -> BdvView | None:
    """The XML beside the N5 root that names this root and this setup, if any."""
    found = layout(where)
    if found is None:
        return None
    root, setup, timepoint, level = found
    folder = os.path.dirname(root)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    for name in names:
        if name.lower().endswith(".xml"):
            view = _read_xml(os.path.join(folder, name), os.path.basename(root), setup, timepoint)
            if view is not None:
                size, unit, affine = view
                return BdvView(name, setup, level, size, unit, affine)
    return None


def _read_xml(
    xml: str, n5_name: str, setup: int, timepoint: int
) -> tuple[list[float] | None, str, np.ndarray | None] | None:
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
        text, unit = vs.findtext("voxelSize/size"), (vs.findtext("voxelSize/unit") or "").strip()
        try:
            size = None if text is None else [float(v) for v in text.split()]
        except ValueError:
            size = None
        return size, unit, _affine(root, setup, timepoint)
    return None


def _affine(root: ET.Element, setup: int, timepoint: int) -> np.ndarray | None:
    """The ViewRegistration's transforms composed in BigDataViewer's order (the first
    listed is applied last), as a 3x4 matrix."""
    for reg in root.iter("ViewRegistration"):
        if reg.get("setup", "").strip() != str(setup):
            continue
        if reg.get("timepoint", "0").strip() != str(timepoint):
            continue
        model = np.eye(4)
        for vt in reg.iter("ViewTransform"):
            try:
                values = [float(v) for v in (vt.findtext("affine") or "").split()]
            except ValueError:
                return None
            if len(values) != 12:
                return None
            model = model @ np.vstack([np.reshape(values, (3, 4)), [0, 0, 0, 1]])
        return model[:3]
    return None


def bdv_geometry(
    view: BdvView, scale: list[float], attr: N5Resolution | None, nz: int, notes: list[str]
) -> tuple[VoxelSize | None, Position | None]:
    """Voxel size and translation of a BigDataViewer N5 level, the XML's unit governing.

    `scale` is the level's downsampling factors (x, y, z); `attr` the N5 attribute the
    plain N5 rules would use.
    """
    assert view.size is not None
    xml_what = f"BigDataViewer XML {view.xml}"
    factor = unit_to_nm(view.unit)
    if factor is None:
        return _unitless_xml(view, attr, nz, notes), None
    level_size = [v * s for v, s in zip(view.size, scale)]
    voxel = voxel_from_list(level_size, "xyz", view.unit, nz, notes, xml_what)
    if voxel is not None and attr is not None:
        _compare(view, level_size, attr, voxel, nz, notes)
    s0 = voxel_from_list(view.size, "xyz", view.unit, nz, [], xml_what)
    return voxel, _translation(view, scale, s0, notes)


def _unitless_xml(
    view: BdvView, attr: N5Resolution | None, nz: int, notes: list[str]
) -> VoxelSize | None:
    said = f"BigDataViewer XML {view.xml} gives the voxel size without a length unit " \
           f"({view.unit or 'none'})"
    if attr is not None and attr.unit is not None:
        voxel = voxel_from_list(attr.values, "xyz", attr.unit, nz, notes,
                                f"N5 resolution in {attr.node}")  # fmt: skip
        notes.append(f"{said}; using the N5 resolution in {attr.node} ({attr.unit})")
        return voxel
    either = "; the N5 resolution attribute has none either" if attr is not None else ""
    notes.append(f"{said}{either}: voxel size unknown (pass --voxel-size)")
    return None


def _close(a: Any, b: Any) -> bool:
    try:
        return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=0))
    except (TypeError, ValueError):
        return False


def _compare(
    view: BdvView, level_size: list[float], attr: N5Resolution, voxel: VoxelSize, nz: int,
    notes: list[str],
) -> None:
    where = f"the N5 resolution attribute in {attr.node}"
    xml_what = f"the BigDataViewer XML {view.xml}"
    if attr.unit is None:
        if _close(attr.values, level_size):
            notes.append(f"{where} has no unit; read in the unit of {xml_what} ({view.unit})")
        else:
            notes.append(f"{where} ({attr.values}, no unit) disagrees with {xml_what} "
                         f"({level_size} {view.unit}); using the XML")  # fmt: skip
        return
    theirs = voxel_from_list(attr.values, "xyz", attr.unit, nz, [], where)
    if theirs is None or not _close(theirs, voxel):
        shown = "?" if theirs is None else "x".join(f"{v:g}" for v in theirs)
        notes.append(f"{where} ({shown} nm) disagrees with {xml_what} "
                     f"({'x'.join(f'{v:g}' for v in voxel)} nm); using the XML")  # fmt: skip


def _translation(
    view: BdvView, scale: list[float], s0: VoxelSize | None, notes: list[str]
) -> Position | None:
    a = view.affine
    if a is None or s0 is None or len(scale) != 3:
        return None
    diag = np.diag(a[:, :3])
    off = a[:, :3] - np.diag(diag)
    if np.any(diag <= 0) or np.any(np.abs(off) > 1e-9 * np.abs(diag).max()):
        notes.append(f"BigDataViewer XML {view.xml}: the registration of setup {view.setup} "
                     "is rotated, sheared or flipped; its translation is ignored")  # fmt: skip
        return None
    voxel_xyz = s0[::-1]
    nm_xyz = [a[d, 3] * voxel_xyz[d] / diag[d] + (scale[d] - 1) / 2 * voxel_xyz[d]
              for d in range(3)]  # fmt: skip
    return clean_position(nm_xyz[::-1])
