"""Tests for pssr_volume.io.inputs: lazy, read-only input volumes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from conftest import SHARED_DATA as SHARED
from conftest import needs_shared

from pssr_volume.errors import PssrError
from pssr_volume.io.inputs import InputVolume, clear_handle_cache, open_input
from pssr_volume.io.tiff import natural_key

RNG = np.random.default_rng(0)


def _volume(shape: tuple[int, ...], dtype: str = "uint16") -> np.ndarray:
    return RNG.integers(0, 200, size=shape).astype(dtype)


def _regions(shape: tuple[int, int, int]) -> list[tuple[slice, slice, slice]]:
    nz, ny, nx = shape
    return [
        (slice(0, nz), slice(0, ny), slice(0, nx)),
        (slice(nz // 2, nz), slice(1, ny), slice(ny // 3, nx)),  # touches the far edge
        (slice(0, 1), slice(2, 3), slice(nx - 1, nx)),
        (slice(nz - 1, nz), slice(0, 0), slice(0, nx)),  # empty
    ]


def _check_reads(vol: InputVolume, expected: np.ndarray) -> None:
    assert vol.shape == expected.shape
    for region in _regions(vol.shape):
        got = vol.read(region)
        assert got.flags.c_contiguous and got.flags.writeable
        assert got.dtype == np.dtype(vol.dtype) and got.dtype.isnative
        np.testing.assert_array_equal(got, expected[region])


def _imagej(path: Path, data: np.ndarray, **meta: object) -> Path:
    res = meta.pop("res", None)
    axes = "ZYX" if data.ndim == 3 else "YX"
    kwargs = {} if res is None else {"resolution": (1 / res, 1 / res)}
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": axes, **meta}, **kwargs)
    return path


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _assert_one_line(exc: pytest.ExceptionInfo[PssrError], *words: str) -> None:
    text = str(exc.value)
    assert text and "\n" not in text and "\r" not in text
    for word in words:
        assert word in text


# --- single TIFF files -------------------------------------------------------------------


def test_imagej_stack_odd_shape(tmp_path: Path) -> None:
    data = _volume((5, 13, 17))
    vol = open_input(_imagej(tmp_path / "s.tif", data, res=4, unit="nm", spacing=50))
    assert (vol.kind, vol.dtype, vol.voxel_size) == ("tiff", "uint16", (50.0, 4.0, 4.0))
    assert vol.path == str(tmp_path / "s.tif") and vol.array_path is None and vol.notes == ()
    _check_reads(vol, data)
    line = vol.describe()
    assert "\n" not in line and "tiff" in line and "(5, 13, 17)" in line and "uint16" in line


@pytest.mark.parametrize("unit", ["micron", "um", "\\u00B5m", "micrometer"])
def test_imagej_micron_units(tmp_path: Path, unit: str) -> None:
    vol = open_input(
        _imagej(tmp_path / "m.tif", _volume((3, 4, 5)), res=0.004, unit=unit, spacing=0.05)
    )
    assert vol.voxel_size == (50.0, 4.0, 4.0)


def test_imagej_missing_spacing_uses_x_with_note(tmp_path: Path) -> None:
    vol = open_input(_imagej(tmp_path / "a.tif", _volume((3, 4, 5)), res=8, unit="nm"))
    assert vol.voxel_size == (8.0, 8.0, 8.0)
    assert any("z spacing" in n for n in vol.notes)


@pytest.mark.parametrize("unit", [None, "pixel"])
def test_imagej_without_length_unit_has_no_voxel_size(tmp_path: Path, unit: str | None) -> None:
    meta = {} if unit is None else {"unit": unit}
    vol = open_input(_imagej(tmp_path / "p.tif", _volume((3, 4, 5)), res=2, **meta))
    assert vol.voxel_size is None and vol.notes


def test_2d_image_is_z1(tmp_path: Path) -> None:
    data = _volume((9, 11), "uint8")
    vol = open_input(_imagej(tmp_path / "i.tif", data, res=5, unit="nm"))
    assert vol.shape == (1, 9, 11) and vol.voxel_size == (5.0, 5.0, 5.0) and vol.notes == ()
    _check_reads(vol, data[None])
    tifffile.imwrite(tmp_path / "plain.tif", data)
    _check_reads(open_input(tmp_path / "plain.tif"), data[None])


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"PhysicalSizeX": 0.004, "PhysicalSizeY": 0.004, "PhysicalSizeZ": 0.05}, (50, 4, 4)),
        (
            {
                "PhysicalSizeX": 6,
                "PhysicalSizeXUnit": "nm",
                "PhysicalSizeY": 6,
                "PhysicalSizeYUnit": "nm",
                "PhysicalSizeZ": 300,
                "PhysicalSizeZUnit": "Å",
            },
            (30, 6, 6),
        ),
    ],
)
def test_ome_tiff(tmp_path: Path, meta: dict[str, object], expected: tuple[float, ...]) -> None:
    data = _volume((4, 6, 7))
    tifffile.imwrite(tmp_path / "o.ome.tif", data, ome=True, metadata={"axes": "ZYX", **meta})
    vol = open_input(tmp_path / "o.ome.tif")
    assert vol.kind == "tiff" and vol.voxel_size == expected
    _check_reads(vol, data)


def test_plain_compressed_bigendian_tiff(tmp_path: Path) -> None:
    data = _volume((4, 10, 7))
    gray = {"photometric": "minisblack"}  # else tifffile stores 3 or 4 planes as RGB(A)
    tifffile.imwrite(tmp_path / "c.tif", data, compression="zlib", rowsperstrip=3, **gray)
    tifffile.imwrite(tmp_path / "b.tif", data, byteorder=">", **gray)
    for name in ("c.tif", "b.tif"):
        vol = open_input(tmp_path / name)
        assert vol.dtype == "uint16" and vol.voxel_size is None and vol.notes
        _check_reads(vol, data)


def test_singleton_channel_is_squeezed(tmp_path: Path) -> None:
    data = _volume((3, 1, 5, 6))
    tifffile.imwrite(tmp_path / "c1.tif", data, metadata={"axes": "ZCYX"})
    vol = open_input(tmp_path / "c1.tif")
    assert vol.shape == (3, 5, 6)
    _check_reads(vol, data[:, 0])


def test_imagej_stack_written_without_axes_reads_as_sections(tmp_path: Path) -> None:
    # tifffile.imwrite(imagej=True) labels the first axis of a 3-D array as channels
    data = _volume((4, 12, 10), "uint8")
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, resolution=(1 / 18.4, 1 / 18.4),
                     metadata={"unit": "nm", "spacing": 50.0})
    assert tifffile.TiffFile(tmp_path / "ij.tif").series[0].axes == "CYX"
    vol = open_input(tmp_path / "ij.tif")
    assert vol.shape == (4, 12, 10)
    assert vol.voxel_size == pytest.approx((50.0, 18.4, 18.4))
    assert any("channels" in n for n in vol.notes)
    _check_reads(vol, data)


@pytest.mark.parametrize(
    ("shape", "kwargs", "word"),
    [
        ((5, 6, 3), {"photometric": "rgb"}, "colour"),
        ((3, 2, 5, 6), {"metadata": {"axes": "ZCYX"}}, "channels"),
        ((2, 3, 5, 6), {"metadata": {"axes": "TZYX"}, "photometric": "minisblack"}, "4-D"),
    ],
)
def test_unsupported_tiff_axes(
    tmp_path: Path, shape: tuple[int, ...], kwargs: dict, word: str
) -> None:
    tifffile.imwrite(tmp_path / "x.tif", _volume(shape, "uint8"), **kwargs)
    with pytest.raises(PssrError) as exc:
        open_input(tmp_path / "x.tif")
    _assert_one_line(exc, str(tmp_path / "x.tif"), word)


# --- folders of TIFF slices --------------------------------------------------------------


def test_folder_natural_sort_and_filtering(tmp_path: Path) -> None:
    folder = tmp_path / "slices"
    folder.mkdir()
    for i in range(1, 13):
        suffix = ".TIF" if i == 7 else ".tif" if i % 2 else ".tiff"
        tifffile.imwrite(folder / f"{i}{suffix}", np.full((5, 7), i, np.uint8))
    tifffile.imwrite(folder / ".hidden.tif", np.zeros((5, 7), np.uint8))
    tifffile.imwrite(folder / "._1.tif", np.zeros((3, 3), np.uint16))  # macOS resource fork
    (folder / "notes.txt").write_text("not a slice")
    (folder / "sub.tif").mkdir()
    vol = open_input(folder)
    assert (vol.kind, vol.shape, vol.dtype, vol.voxel_size) == (
        "tiff-folder",
        (12, 5, 7),
        "uint8",
        None,
    )
    expected = np.repeat(np.arange(1, 13, dtype=np.uint8), 35).reshape(12, 5, 7)
    _check_reads(vol, expected)


def test_natural_key() -> None:
    names = ["slice_10.tif", "slice_2.tif", "Slice_1.tif", "a10b2.tif", "a10b10.tif", "a2.tif"]
    assert sorted(names, key=natural_key) == [
        "a2.tif",
        "a10b2.tif",
        "a10b10.tif",
        "Slice_1.tif",
        "slice_2.tif",
        "slice_10.tif",
    ]


def test_folder_compressed_calibrated_slices(tmp_path: Path) -> None:
    data = _volume((4, 9, 10))
    for i, plane in enumerate(data):
        tifffile.imwrite(
            tmp_path / f"z{i:02d}.tif",
            plane,
            imagej=True,
            resolution=(1 / 6, 1 / 6),
            metadata={"unit": "nm", "axes": "YX"},
            compression="zlib",
        )
    vol = open_input(tmp_path)
    assert vol.voxel_size == (6.0, 6.0, 6.0) and any("z spacing" in n for n in vol.notes)
    _check_reads(vol, data)


@pytest.mark.parametrize("bad", ["shape", "dtype", "stack"])
def test_folder_mismatched_slice(tmp_path: Path, bad: str) -> None:
    for i in range(4):
        tifffile.imwrite(tmp_path / f"{i}.tif", np.zeros((6, 8), np.uint8))
    odd = {
        "shape": np.zeros((6, 9), np.uint8),
        "dtype": np.zeros((6, 8), np.uint16),
        "stack": np.zeros((2, 6, 8), np.uint8),
    }[bad]
    tifffile.imwrite(tmp_path / "2.tif", odd)
    tifffile.imwrite(tmp_path / "3.tif", odd)
    with pytest.raises(PssrError) as exc:
        open_input(tmp_path)
    _assert_one_line(exc, str(tmp_path / "2.tif"))
    assert str(tmp_path / "3.tif") not in str(exc.value)


# --- zarr and OME-Zarr -------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("shape", [(5, 9, 11), (9, 11), (1, 1, 4, 6, 7)])
def test_zarr_array(tmp_path: Path, zarr_format: int, shape: tuple[int, ...]) -> None:
    data = _volume(shape, "float32")
    arr = zarr.create_array(tmp_path / "a.zarr", shape=shape, chunks=(2,) * len(shape),
                            dtype="float32", zarr_format=zarr_format)  # fmt: skip
    arr[...] = data
    vol = open_input(tmp_path / "a.zarr")
    assert (vol.kind, vol.dtype, vol.voxel_size, vol.array_path) == ("zarr", "float32", None, None)
    _check_reads(vol, data.reshape(data.shape[-3:]) if data.ndim > 2 else data[None])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ome_zarr's own Scaler default
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_written_by_ome_zarr(tmp_path: Path, zarr_format: int) -> None:
    from ome_zarr.writer import write_image

    data = _volume((6, 10, 12), "uint8")
    path = tmp_path / "img.ome.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    write_image(
        data,
        group,
        axes="zyx",
        scale={"z": 0.05, "y": 0.004, "x": 0.004},
        axes_units={a: "micrometer" for a in "zyx"},
        scale_factors=[2],
    )
    attrs = dict(zarr.open_group(path, mode="r").attrs)
    assert ("ome" in attrs) == (zarr_format == 3)  # NGFF 0.5 on v3, 0.4 on v2
    vol = open_input(path)
    assert (vol.kind, vol.path, vol.array_path) == ("ome-zarr", str(path), "s0")
    assert vol.voxel_size == (50.0, 4.0, 4.0) and vol.dtype == "uint8"
    _check_reads(vol, data)
    level = open_input(path / "s1")
    assert (level.kind, level.path, level.array_path) == ("ome-zarr", str(path), "s1")
    assert level.shape == (6, 5, 6) and level.voxel_size == (50.0, 8.0, 8.0)
    np.testing.assert_array_equal(level.read((slice(0, 6), slice(0, 5), slice(0, 6))),
                                  zarr.open_array(path / "s1", mode="r")[:])  # fmt: skip


def _ome_by_hand(path: Path, data: np.ndarray, axes: list[dict], zarr_format: int, **extra) -> None:
    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    group.create_array("0", shape=data.shape, chunks=data.shape, dtype=data.dtype)[...] = data
    ms = {
        "axes": axes,
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": extra["scale"]}]}
        ],
        **extra.get("ms", {}),
    }
    if zarr_format == 3:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        group.attrs["multiscales"] = [{"version": "0.4", **ms}]


def _axes(names: str, unit: str | None) -> list[dict]:
    out = []
    for n in names:
        axis = {"name": n, "type": "space" if n in "zyx" else "channel" if n == "c" else "time"}
        if n in "zyx" and unit is not None:
            axis["unit"] = unit
        out.append(axis)
    return out


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_by_hand_tczyx_units(tmp_path: Path, zarr_format: int) -> None:
    data = _volume((1, 1, 3, 4, 5))
    _ome_by_hand(
        tmp_path / "h.zarr",
        data,
        _axes("tczyx", "angstrom"),
        zarr_format,
        scale=[1, 1, 100, 20, 20],
        ms={"coordinateTransformations": [{"type": "scale", "scale": [1, 1, 2, 2, 2]}]},
    )
    vol = open_input(tmp_path / "h.zarr")
    assert vol.shape == (3, 4, 5) and vol.voxel_size == (20.0, 4.0, 4.0)
    _check_reads(vol, data[0, 0])


def test_ome_zarr_without_units_and_2d(tmp_path: Path) -> None:
    _ome_by_hand(tmp_path / "n.zarr", _volume((3, 4, 5)), _axes("zyx", None), 2, scale=[1, 1, 1])
    vol = open_input(tmp_path / "n.zarr")
    assert vol.voxel_size is None and any("unit" in n for n in vol.notes)
    data = _volume((4, 5))
    _ome_by_hand(tmp_path / "2d.zarr", data, _axes("yx", "nanometer"), 3, scale=[3, 3])
    vol = open_input(tmp_path / "2d.zarr")
    assert vol.shape == (1, 4, 5) and vol.voxel_size == (3.0, 3.0, 3.0) and vol.notes == ()
    _check_reads(vol, data[None])


def test_ome_zarr_multichannel_refused(tmp_path: Path) -> None:
    _ome_by_hand(tmp_path / "c.zarr", _volume((2, 3, 4, 5)), _axes("czyx", "nanometer"), 3,
                 scale=[1, 1, 1, 1])  # fmt: skip
    with pytest.raises(PssrError) as exc:
        open_input(tmp_path / "c.zarr")
    _assert_one_line(exc, str(tmp_path / "c.zarr"), "'c'")


def test_zarr_group_without_ome_metadata(tmp_path: Path) -> None:
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("raw", shape=(2, 3, 4), dtype="uint8")
    with pytest.raises(PssrError) as exc:
        open_input(tmp_path / "g.zarr")
    _assert_one_line(exc, str(tmp_path / "g.zarr"), "raw")


# --- pickling, read-only, errors ---------------------------------------------------------


def _read_all(vol: InputVolume) -> np.ndarray:
    return vol.read((slice(0, vol.shape[0]), slice(0, vol.shape[1]), slice(0, vol.shape[2])))


def test_pickle_roundtrip_and_read_in_other_process(tmp_path: Path) -> None:
    data = _volume((3, 5, 6))
    tiff = _imagej(tmp_path / "s.tif", data, res=4, unit="nm", spacing=40)
    tifffile.imwrite(tmp_path / "c.tif", data, compression="zlib", photometric="minisblack")
    folder = tmp_path / "f"
    folder.mkdir()
    for i, plane in enumerate(data):
        tifffile.imwrite(folder / f"{i}.tif", plane)
    zarr.create_array(tmp_path / "a.zarr", data=data)
    vols = [open_input(p) for p in (tiff, tmp_path / "c.tif", folder, tmp_path / "a.zarr")]
    for vol in vols:
        _read_all(vol)  # fills this process's handle cache
        blob = pickle.dumps(vol)
        assert len(blob) < 2000
        clone = pickle.loads(blob)
        assert clone == vol
        clear_handle_cache()
        np.testing.assert_array_equal(_read_all(clone), data)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for got in pool.map(_read_all, vols):
            np.testing.assert_array_equal(got, data)


def test_read_decodes_only_the_pages_it_needs(tmp_path: Path) -> None:
    data = _volume((4, 16, 16))
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, data, compression="zlib", photometric="minisblack")
    vol = open_input(path)
    with tifffile.TiffFile(path) as tf:
        offset, count = tf.pages[3].dataoffsets[0], tf.pages[3].databytecounts[0]
    with open(path, "r+b") as fh:  # corrupt the last page's compressed data in place
        fh.seek(offset)
        fh.write(b"\xff" * count)
    clear_handle_cache()
    np.testing.assert_array_equal(vol.read((slice(0, 3), slice(0, 16), slice(0, 16))), data[:3])
    with pytest.raises(PssrError) as exc:
        vol.read((slice(2, 4), slice(0, 16), slice(0, 16)))
    _assert_one_line(exc, str(path))


def test_concurrent_reads_from_threads(tmp_path: Path) -> None:
    data = _volume((8, 24, 20))
    tifffile.imwrite(tmp_path / "c.tif", data, compression="zlib", rowsperstrip=4)
    _imagej(tmp_path / "s.tif", data, res=4, unit="nm")
    vols = [open_input(tmp_path / name) for name in ("c.tif", "s.tif")]
    regions = [
        (slice(z, z + 3), slice(y, y + 9), slice(x, x + 11))
        for z in range(0, 6, 2)
        for y in (0, 7, 15)
        for x in (0, 9)
    ]
    with ThreadPoolExecutor(4) as pool:
        for vol in vols:
            for region, got in zip(regions, pool.map(vol.read, regions), strict=True):
                np.testing.assert_array_equal(got, data[region])


def test_inputs_are_unchanged(tmp_path: Path) -> None:
    data = _volume((3, 5, 6))
    _imagej(tmp_path / "s.tif", data, res=4, unit="nm", spacing=40)
    tifffile.imwrite(tmp_path / "c.tif", data, compression="zlib", photometric="minisblack")
    (tmp_path / "f").mkdir()
    for i, plane in enumerate(data):
        tifffile.imwrite(tmp_path / "f" / f"{i}.tif", plane)
    zarr.create_array(tmp_path / "a.zarr", data=data, zarr_format=2)
    _ome_by_hand(tmp_path / "o.zarr", data, _axes("zyx", "nanometer"), 3, scale=[1, 2, 2])
    before = _snapshot(tmp_path)
    for name in ("s.tif", "c.tif", "f", "a.zarr", "o.zarr", "o.zarr/0"):
        _read_all(open_input(tmp_path / name))
    clear_handle_cache()
    assert _snapshot(tmp_path) == before


def test_read_rejects_bad_regions(tmp_path: Path) -> None:
    vol = open_input(_imagej(tmp_path / "s.tif", _volume((3, 5, 6)), res=4, unit="nm"))
    for region in [
        (slice(0, 4), slice(0, 5), slice(0, 6)),
        (slice(0, 1), slice(0, 5)),
        (slice(0, 3, 2), slice(0, 5), slice(0, 6)),
        (0, slice(0, 5), slice(0, 6)),
    ]:
        with pytest.raises(ValueError):
            vol.read(region)  # type: ignore[arg-type]


def _truncated(path: Path) -> Path:
    tifffile.imwrite(path, _volume((6, 32, 32)))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _make_bad_input(root: Path, case: str) -> Path:
    """Create the input for one error case of test_open_errors and return its path."""
    if case == "missing":
        return root / "missing.tif"
    if case == "truncated":
        return _truncated(root / "t.tif")
    if case in ("random-dir", "empty-dir"):
        (root / case).mkdir()
        if case == "random-dir":
            (root / case / "a.txt").write_text("x")
            (root / case / "sub").mkdir()
        return root / case
    name, content = {
        "garbage": ("g.tif", b"garbage " * 20),
        "empty-file": ("e.tiff", b""),
        "png": ("x.png", b"\x89PNG\r\n\x1a\n"),
    }[case]
    (root / name).write_bytes(content)
    return root / name


@pytest.mark.parametrize(
    ("case", "word"),
    [
        ("missing", "not found"),
        ("garbage", "not a valid TIFF"),
        ("empty-file", "not a valid TIFF"),
        ("truncated", "truncated"),
        ("png", ".png"),
        ("random-dir", "no TIFF"),
        ("empty-dir", "no TIFF"),
    ],
)
def test_open_errors(tmp_path: Path, case: str, word: str) -> None:
    path = _make_bad_input(tmp_path, case)
    with pytest.raises(PssrError) as exc:
        open_input(path)
    _assert_one_line(exc, str(path), word)


def test_truncated_slice_in_folder(tmp_path: Path) -> None:
    for i in range(3):
        tifffile.imwrite(tmp_path / f"{i}.tif", np.zeros((32, 32), np.uint8))
    (tmp_path / "1.tif").write_bytes((tmp_path / "1.tif").read_bytes()[:600])
    with pytest.raises(PssrError) as exc:
        open_input(tmp_path)
    _assert_one_line(exc, str(tmp_path / "1.tif"), "truncated")


_AS_NOBODY = """
import sys
from pssr_volume.errors import PssrError
from pssr_volume.io.inputs import open_input
try:
    open_input(sys.argv[1])
except PssrError as exc:
    print("PssrError:", exc)
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permission_denied(tmp_path: Path) -> None:
    path = _imagej(tmp_path / "s.tif", _volume((2, 3, 4)))
    path.chmod(0)
    try:
        if os.geteuid() != 0:
            with pytest.raises(PssrError) as exc:
                open_input(path)
            _assert_one_line(exc, str(path), "permission denied")
            return

        # root reads anything: check from a child process running as user "nobody"
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv is not available")
        drop = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        out = subprocess.run(
            [*drop, sys.executable, "-c", _AS_NOBODY, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if out.returncode != 0:
            pytest.skip(f"cannot run Python as user nobody: {out.stderr[-200:]}")
        lines = out.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("PssrError:"), out.stdout + out.stderr
        assert str(path) in lines[0] and "permission denied" in lines[0]
    finally:
        path.chmod(0o644)


# --- the real data sets in /work/shared/data ---------------------------------------------


@needs_shared
def test_shared_flyem_fibsem() -> None:
    vol = open_input(SHARED / "flyem_medulla_fibsem_10nm" / "training_sample1.tif")
    assert (vol.kind, vol.shape, vol.dtype) == ("tiff", (250, 250, 250), "uint8")
    assert vol.voxel_size == (10.0, 10.0, 10.0)
    assert vol.read((slice(240, 250), slice(0, 7), slice(243, 250))).shape == (10, 7, 7)


@needs_shared
def test_shared_isbi_sstem() -> None:
    vol = open_input(SHARED / "isbi2012_sstem" / "train-volume.tif")
    assert (vol.shape, vol.dtype, vol.voxel_size) == ((30, 512, 512), "uint8", (50.0, 4.0, 4.0))


@needs_shared
def test_shared_vnc_folder() -> None:
    folder = SHARED / "drosophila_vnc_sstem_stack1" / "raw"
    vol = open_input(folder)
    assert (vol.kind, vol.shape, vol.dtype, vol.voxel_size) == (
        "tiff-folder",
        (20, 1024, 1024),
        "uint8",
        None,
    )
    got = vol.read((slice(18, 20), slice(1000, 1024), slice(0, 5)))
    np.testing.assert_array_equal(got[1], tifffile.imread(folder / "19.tif")[1000:, :5])
