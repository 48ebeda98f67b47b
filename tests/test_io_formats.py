"""HDF5, MRC, N5 and zarr-v2 inputs: real files written by h5py, mrcfile, TensorStore
and zarr, read back lazily with their voxel sizes from the metadata."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import mrcfile
import numpy as np
import pytest
import tensorstore as ts
import zarr
from test_io_inputs import _assert_one_line, _check_reads, _read_all, _snapshot, _volume

from pssr_volume.errors import PssrError
from pssr_volume.io.inputs import clear_handle_cache, input_location, open_input, split_dataset


def write_h5(path: Path, data: np.ndarray, name: str = "/volumes/raw", **attrs: object) -> str:
    """An HDF5 file with `data` at `name` (chunked, gzip) and the given attributes."""
    with h5py.File(path, "a") as f:
        chunks = tuple(min(n, 16) for n in data.shape)
        ds = f.create_dataset(name, data=data, chunks=chunks, compression="gzip")
        for key, value in attrs.items():
            ds.attrs[key] = value
    return f"{path}:{name}"


def write_mrc(path: Path, data: np.ndarray, voxel_nm: tuple[float, float, float] | None,
              imod_unsigned: bool = False) -> Path:
    """An MRC file; voxel size given in nm (z, y, x), stored as Å (x, y, z).

    ``imod_unsigned`` stores uint8 data as mode 0 with IMOD's header stamp and
    the signed-bytes flag clear, as IMOD writes unsigned bytes.
    """
    with mrcfile.new(path) as mrc:
        mrc.set_data(data.view(np.int8) if imod_unsigned else data)
        if voxel_nm is not None:
            mrc.voxel_size = tuple(10 * v for v in voxel_nm[::-1])
        if imod_unsigned:
            extra = bytearray(mrc.header.extra2.tobytes())
            extra[40:48] = np.array([1146047817, 0], dtype="<i4").tobytes()  # stamp, flags
            mrc.header.extra2 = np.frombuffer(bytes(extra), dtype=mrc.header.extra2.dtype)
    return path


def write_n5(path: Path, data: np.ndarray, block: tuple[int, ...] = (16, 16, 1),
             compression: str = "gzip") -> Path:
    """An N5 dataset written by TensorStore (dimensions stored x, y, z)."""
    dims = list(data.shape[::-1])
    store = ts.open({
        "driver": "n5", "kvstore": {"driver": "file", "path": str(path)}, "create": True,
        "metadata": {"dimensions": dims, "blockSize": list(block[: len(dims)]),
                     "dataType": data.dtype.name, "compression": {"type": compression}},
    }).result()
    store.T.write(data).result()
    return path


def _set_attrs(folder: Path, **attrs: object) -> None:
    file = folder / "attributes.json"
    current = json.loads(file.read_text()) if file.exists() else {}
    folder.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps({**current, **attrs}))


# --- HDF5 --------------------------------------------------------------------------------


def test_split_dataset_and_location(tmp_path: Path) -> None:
    assert split_dataset("/d/a.h5:/volumes/raw") == ("/d/a.h5", "/volumes/raw")
    assert split_dataset("b.HDF5:raw/") == ("b.HDF5", "/raw")
    assert split_dataset("/d/c.tif") == ("/d/c.tif", None)
    assert input_location("/d/a.h5:/volumes/raw") == Path("/d/a.h5")


@pytest.mark.parametrize(("attrs", "voxel"), [
    ({"resolution": [50.0, 18.4, 18.4]}, (50.0, 18.4, 18.4)),  # CREMI: z, y, x in nm
    ({"resolution": [4.0, 4.0], "unit": "angstrom"}, (0.4, 0.4, 0.4)),
    ({"element_size_um": [0.05, 0.004, 0.004]}, (50.0, 4.0, 4.0)),  # ilastik / Fiji
    ({}, None),
])
def test_hdf5_dataset_and_voxel_size(tmp_path: Path, attrs: dict, voxel: tuple | None) -> None:
    data = _volume((5, 20, 33), "uint8")
    source = write_h5(tmp_path / "s.h5", data, **attrs)
    with h5py.File(tmp_path / "s.h5", "a") as f:
        f.create_dataset("/volumes/labels", data=data.astype(np.uint64))
    vol = open_input(source)
    assert (vol.kind, vol.path, vol.array_path) == ("hdf5", str(tmp_path / "s.h5"), "/volumes/raw")
    assert vol.voxel_size == voxel and vol.chunks == (5, 16, 16)
    assert vol.source == source
    assert any("no resolution attribute" in n for n in vol.notes) == (voxel is None)
    _check_reads(vol, data)


def test_hdf5_single_dataset_opens_without_its_name(tmp_path: Path) -> None:
    data = _volume((12, 7), "float32")  # 2-D
    write_h5(tmp_path / "one.hdf5", data, "/img")
    vol = open_input(tmp_path / "one.hdf5")
    assert (vol.array_path, vol.shape, vol.dtype) == ("/img", (1, 12, 7), "float32")
    _check_reads(vol, data[None])


@pytest.mark.parametrize(("name", "word"), [
    (None, "name one as"), ("/volumes", "group"), ("/nope", "no dataset"),
])
def test_hdf5_errors(tmp_path: Path, name: str | None, word: str) -> None:
    write_h5(tmp_path / "two.h5", _volume((2, 4, 4)), "/volumes/raw")
    write_h5(tmp_path / "two.h5", _volume((2, 4, 4)), "/volumes/labels")
    path = str(tmp_path / "two.h5") + ("" if name is None else f":{name}")
    with pytest.raises(PssrError) as exc:
        open_input(path)
    _assert_one_line(exc, str(tmp_path / "two.h5"), word)


def test_hdf5_not_hdf5(tmp_path: Path) -> None:
    (tmp_path / "fake.h5").write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(PssrError) as exc:
        open_input(tmp_path / "fake.h5")
    _assert_one_line(exc, str(tmp_path / "fake.h5"), "HDF5")


# --- MRC ---------------------------------------------------------------------------------


def test_mrc_voxel_size_from_header_in_angstrom(tmp_path: Path) -> None:
    data = _volume((4, 9, 14), "uint16")
    vol = open_input(write_mrc(tmp_path / "v.mrc", data, (50.0, 18.4, 18.4)))
    assert (vol.kind, vol.dtype, vol.voxel_size) == ("mrc", "uint16", (50.0, 18.4, 18.4))
    _check_reads(vol, data)


def test_mrc_imod_unsigned_bytes_and_signed_bytes(tmp_path: Path) -> None:
    data = _volume((3, 8, 10), "uint8") + 50  # values above 127 too
    vol = open_input(write_mrc(tmp_path / "u.rec", data, (40.0, 8.0, 8.0), imod_unsigned=True))
    assert (vol.dtype, vol.voxel_size) == ("uint8", (40.0, 8.0, 8.0))
    _check_reads(vol, data)
    signed = (data.astype(np.int16) - 128).astype(np.int8)
    vol = open_input(write_mrc(tmp_path / "s.mrc", signed, None))  # MRC2014 mode 0
    assert (vol.dtype, vol.voxel_size) == ("int8", None) and vol.notes
    _check_reads(vol, signed)


def test_mrc_float_2d_big_endian(tmp_path: Path) -> None:
    data = _volume((6, 5), "float32")
    path = write_mrc(tmp_path / "f.mrc", data.astype(">f4"), (10.0, 10.0, 10.0))
    vol = open_input(path)
    assert (vol.shape, vol.dtype) == ((1, 6, 5), "float32")
    _check_reads(vol, data[None])


@pytest.mark.parametrize(("name", "content", "word"), [
    ("bad.mrc", b"x" * 2000, "not a valid MRC"),
    ("short.mrc", b"", "not a valid MRC"),
    ("v.mrc.gz", gzip.compress(b"x" * 100), "decompress"),
])
def test_mrc_errors(tmp_path: Path, name: str, content: bytes, word: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PssrError) as exc:
        open_input(tmp_path / name)
    _assert_one_line(exc, str(tmp_path / name), word)


# --- N5 ----------------------------------------------------------------------------------


def test_n5_paintera_multiscale_group(tmp_path: Path) -> None:
    data = _volume((5, 21, 30), "uint16")
    root = tmp_path / "paintera.n5"
    _set_attrs(root, n5="4.0.0")
    write_n5(root / "raw" / "data" / "s0", data)
    write_n5(root / "raw" / "data" / "s1", data[:, ::2, ::2])
    _set_attrs(root / "raw" / "data", multiScale=True, resolution=[18.4, 18.4, 50.0],
               offset=[0.0, 0.0, 0.0])
    _set_attrs(root / "raw" / "data" / "s1", downsamplingFactors=[2, 2, 1])
    vol = open_input(root / "raw" / "data")
    assert (vol.kind, vol.array_path, vol.shape) == ("n5", "s0", (5, 21, 30))
    assert vol.voxel_size == (50.0, 18.4, 18.4) and vol.chunks == (1, 16, 16)
    _check_reads(vol, data)
    level = open_input(root / "raw" / "data" / "s1")
    assert level.voxel_size == (50.0, 36.8, 36.8)
    _check_reads(level, data[:, ::2, ::2])
    with pytest.raises(PssrError) as exc:
        open_input(root)
    _assert_one_line(exc, str(root), "raw/data/s0")


def test_n5_pixel_resolution_and_2d(tmp_path: Path) -> None:
    data = _volume((17, 9), "float32")
    path = write_n5(tmp_path / "img.n5", data, block=(4, 4), compression="raw")
    _set_attrs(path, pixelResolution={"dimensions": [0.006, 0.006], "unit": "um"})
    vol = open_input(path)
    assert (vol.shape, vol.dtype, vol.voxel_size) == ((1, 17, 9), "float32", (6.0, 6.0, 6.0))
    _check_reads(vol, data[None])


def test_n5_bigdataviewer_export(tmp_path: Path) -> None:
    data = _volume((4, 12, 16), "uint8")
    root = tmp_path / "export.n5"
    _set_attrs(root, n5="2.2.0")
    _set_attrs(root / "setup0", downsamplingFactors=[[1, 1, 1], [2, 2, 1]], dataType="uint8")
    write_n5(root / "setup0" / "timepoint0" / "s0", data)
    write_n5(root / "setup0" / "timepoint0" / "s1", data[:, ::2, ::2])
    (tmp_path / "export.xml").write_text(
        '<?xml version="1.0"?><SpimData version="0.2"><SequenceDescription>'
        '<ImageLoader format="bdv.n5" version="1.0"><n5 type="relative">export.n5</n5>'
        '</ImageLoader><ViewSetups><ViewSetup><id>0</id><name>em</name>'
        '<size>16 12 4</size><voxelSize><unit>µm</unit><size>0.0184 0.0184 0.05</size>'
        '</voxelSize></ViewSetup></ViewSetups></SequenceDescription></SpimData>')
    vol = open_input(root / "setup0" / "timepoint0")
    assert (vol.array_path, vol.voxel_size) == ("s0", (50.0, 18.4, 18.4))
    _check_reads(vol, data)
    assert open_input(root / "setup0" / "timepoint0" / "s1").voxel_size == (50.0, 36.8, 36.8)


# --- zarr v2 with a resolution attribute -------------------------------------------------


def test_zarr_v2_resolution_attribute(tmp_path: Path) -> None:
    data = _volume((3, 10, 12), "uint8")
    arr = zarr.create_array(tmp_path / "c.zarr", shape=data.shape, chunks=(1, 8, 8),
                            dtype="uint8", zarr_format=2)
    arr[...] = data
    arr.attrs["resolution"] = [40, 4, 4]  # funlib / daisy: z, y, x in nm
    vol = open_input(tmp_path / "c.zarr")
    assert (vol.kind, vol.voxel_size, vol.chunks) == ("zarr", (40.0, 4.0, 4.0), (1, 8, 8))
    _check_reads(vol, data)


# --- all formats: picklable, readable in another process, read-only ----------------------


def _all_formats(root: Path, data: np.ndarray) -> list[str]:
    return [
        write_h5(root / "a.h5", data, resolution=[50, 18.4, 18.4]),
        str(write_mrc(root / "a.mrc", data, (50, 18.4, 18.4))),
        str(write_n5(root / "a.n5", data)),
    ]


def test_formats_pickle_spawn_and_stay_unchanged(tmp_path: Path) -> None:
    data = _volume((3, 18, 20), "uint16")
    sources = _all_formats(tmp_path, data)
    before = _snapshot(tmp_path)
    vols = [open_input(s) for s in sources]
    for vol in vols:
        np.testing.assert_array_equal(_read_all(vol), data)
        blob = pickle.dumps(vol)
        assert len(blob) < 2000 and pickle.loads(blob) == vol
    clear_handle_cache()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for got in pool.map(_read_all, vols):
            np.testing.assert_array_equal(got, data)
    assert _snapshot(tmp_path) == before
