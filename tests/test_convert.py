"""``pssr-volume convert``: lossless, chunk-aligned, bounded memory; legacy formats
(TIFF folder, HDF5, MRC, N5) to OME-Zarr, and ``run`` on the same inputs."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from conftest import SHARED_DATA, digest, em_like, needs_shared, write_tiff
from test_io_formats import write_h5, write_mrc, write_n5
from test_pyramid import mode_oracle

import pssr_volume.convert as convert_module
from pssr_volume.config import ConvertConfig
from pssr_volume.convert import convert
from pssr_volume.pyramid import downsample, plan_levels

STACK1 = SHARED_DATA / "drosophila_vnc_sstem_stack1" / "raw"
VOXEL = [50.0, 18.4, 18.4]  # the calibration for stack1 (its TIFFs have none)


def _ms(path: Path) -> dict:
    attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    return attrs.get("ome", attrs)["multiscales"][0]


def _scales(path: Path) -> list[list[float]]:
    return [d["coordinateTransformations"][0]["scale"] for d in _ms(path)["datasets"]]


def _level(path: Path, k: int = 0) -> np.ndarray:
    return zarr.open_array(str(path / str(k)), mode="r")[...]


def _stack1() -> np.ndarray:
    return np.stack([tifffile.imread(f) for f in sorted(STACK1.glob("*.tif"))])


def assert_clean_failure(code: int, err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1, err
    assert lines[0].startswith("Error: ") and "Traceback" not in err


@needs_shared
def test_convert_stack1_folder_gives_the_stacked_slices(tmp_path, cli):
    out = tmp_path / "stack1.ome.zarr"
    code, _, err = cli("convert", STACK1, out, "--voxel-size", "50,18.4,18.4", "--no-progress")
    assert code == 0, err
    ref = _stack1()
    level0 = _level(out)
    assert level0.dtype == np.uint8 and level0.shape == (20, 1024, 1024)
    np.testing.assert_array_equal(level0, ref)
    assert _scales(out)[0] == pytest.approx(VOXEL)
    np.testing.assert_array_equal(_level(out, 1), downsample(ref, (1, 2, 2)))
    prov = zarr.open_group(str(out), mode="r").attrs["pssr_volume"]
    assert prov["operation"] == "convert" and prov["status"] == "complete"
    assert prov["input"]["kind"] == "tiff-folder" and prov["input"]["path"] == str(STACK1)


@needs_shared
def test_hdf5_and_mrc_of_stack1_convert_losslessly_and_run_directly(
        tmp_path, cli, models, scheduler):
    crop = _stack1()[:3, 384:640, 384:640]  # 3 x 256 x 256 uint8
    h5 = write_h5(tmp_path / "stack1.h5", crop, "/volumes/raw", resolution=VOXEL)
    mrc = write_mrc(tmp_path / "stack1.mrc", crop, tuple(VOXEL), imod_unsigned=True)
    h5_file = tmp_path / "stack1.h5"
    before = (digest(h5_file), digest(mrc))
    restored = []
    for name, source in (("h5", h5), ("mrc", mrc)):
        out = tmp_path / f"{name}.ome.zarr"
        code, _, err = cli("convert", source, out, "--no-progress")  # voxel size from metadata
        assert code == 0, err
        np.testing.assert_array_equal(_level(out), crop)
        assert _level(out).dtype == np.uint8
        assert _scales(out)[0] == pytest.approx(VOXEL)
        run_out = tmp_path / f"{name}-run.ome.zarr"
        code, _, err = cli("run", source, run_out, "--model", models["pointwise"],
                           "--cluster", scheduler, "--no-progress", "--levels", "2")
        assert code == 0, err
        assert _scales(run_out)[0] == pytest.approx([50.0, 4.6, 4.6])
        prov = zarr.open_group(str(run_out), mode="r").attrs["pssr_volume"]
        assert prov["input"]["array"] == ("/volumes/raw" if name == "h5" else None)
        restored.append(_level(run_out))
    assert restored[0].shape == (3, 1024, 1024)
    np.testing.assert_array_equal(restored[0], restored[1])  # same data, same restoration
    np.testing.assert_array_equal(restored[0], crop.repeat(4, 1).repeat(4, 2))  # pointwise
    assert (digest(h5_file), digest(mrc)) == before  # the inputs were only read


def test_pyramid_and_chunks_match_run_layout(tmp_path, monkeypatch):
    data = em_like((5, 100, 90), seed=3)
    source = write_h5(tmp_path / "v.h5", data, "/raw", resolution=[20.0, 8.0, 8.0])
    monkeypatch.setattr(convert_module, "TASK_BYTES", 8 * 2 * 32 * 32)  # 1-chunk tasks
    stats = convert(ConvertConfig(input=source, output=tmp_path / "o.ome.zarr",
                                  chunk_shape=(2, 32, 32), levels=4, progress=False,
                                  cluster="sync"))
    out = tmp_path / "o.ome.zarr"
    levels = plan_levels((5, 100, 90), (20.0, 8.0, 8.0), 4)  # the pyramid `run` writes
    assert stats.levels == 4 and stats.tasks > 30
    assert [lv.factors for lv in levels] == [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    expected = data
    for lv in levels:
        expected = downsample(expected, lv.factors)
        arr = zarr.open_array(str(out / lv.path), mode="r")
        assert arr.chunks == (2, 32, 32) and arr.shape == lv.shape
        np.testing.assert_array_equal(arr[...], expected)
    assert _scales(out) == [pytest.approx(list(lv.voxel_size)) for lv in levels]


def test_memory_stays_bounded(tmp_path, monkeypatch):
    shape = (16, 1024, 1024)  # 16 MiB
    src = zarr.create_array(tmp_path / "big.zarr", shape=shape, chunks=(8, 256, 256),
                            dtype="uint8", zarr_format=2)
    src[...] = np.broadcast_to(np.arange(1024, dtype=np.uint8)[None, None, :] // 4, shape)
    monkeypatch.setattr(convert_module, "TASK_BYTES", 2 << 20)
    tracemalloc.start()
    try:
        convert(ConvertConfig(input=tmp_path / "big.zarr", output=tmp_path / "o.ome.zarr",
                              voxel_size=(8, 8, 8), chunk_shape=(4, 128, 128), progress=False,
                              cluster="sync"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a 16 MiB volume"
    np.testing.assert_array_equal(_level(tmp_path / "o.ome.zarr")[:, 3, :], src[:, 3, :])


def test_n5_to_ngff04_valid_and_info(tmp_path, cli):
    from ome_zarr_models import open_ome_zarr

    data = em_like((3, 40, 52), seed=5).astype(np.uint16) * 7
    n5 = write_n5(tmp_path / "raw.n5", data)
    (n5 / "attributes.json").write_text(json.dumps({
        **json.loads((n5 / "attributes.json").read_text()), "resolution": [4.0, 4.0, 30.0]}))
    out = tmp_path / "n5.ome.zarr"
    code, _, err = cli("convert", n5, out, "--ngff-version", "0.4", "--no-progress")
    assert code == 0, err
    assert (out / ".zattrs").is_file() and type(open_ome_zarr(str(out))).__name__ == "Image"
    np.testing.assert_array_equal(_level(out), data)
    assert _scales(out)[0] == pytest.approx([30.0, 4.0, 4.0])
    code, text, _ = cli("info", out)
    assert code == 0
    assert "shape (z, y, x) = (3, 40, 52), uint16" in text and "NGFF 0.4 (zarr v2)" in text
    assert "chunks    3x40x52" in text and "made by   pssr-volume" in text and " convert\n" in text
    code, text, _ = cli("info", out, "--json")
    info = json.loads(text)
    assert [lv["shape"] for lv in info["levels"]] == [[3, 40, 52]]
    assert info["voxel_size_nm"] == [30.0, 4.0, 4.0] and info["provenance"]["status"] == "complete"
    code, text, _ = cli("info", n5)
    assert code == 0 and "n5:" in text and "chunks    1x16x16" in text


def test_missing_voxel_size_warns_and_uses_1nm(tmp_path, cli):
    inp = write_tiff(tmp_path / "plain.tif", em_like((2, 30, 30)), voxel=None)
    code, _, err = cli("convert", inp, tmp_path / "o.ome.zarr", "--no-progress")
    assert code == 0 and "no voxel size" in err and "using 1 nm" in err
    assert _scales(tmp_path / "o.ome.zarr")[0] == [1.0, 1.0, 1.0]
    code, _, err = cli("convert", inp, tmp_path / "o.ome.zarr", "--overwrite", "--no-progress",
                       "--voxel-size", "30,6,6")
    assert code == 0 and "no voxel size" not in err
    assert _scales(tmp_path / "o.ome.zarr")[0] == [30.0, 6.0, 6.0]


@pytest.mark.parametrize("case", [
    "missing input", "output exists", "overwrite a non-zarr folder", "output inside input",
    "zero chunk", "zero levels", "bad voxel size", "unsupported input", "hdf5 group",
    "output inside the input's OME-Zarr group",
])
def test_convert_errors_are_one_line_and_write_nothing(tmp_path, cli, case):
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 16, 16)))
    folder = tmp_path / "slices"
    folder.mkdir()
    tifffile.imwrite(folder / "0.tif", em_like((1, 8, 8))[0])
    exists = tmp_path / "exists.ome.zarr"
    convert(ConvertConfig(input=inp, output=exists, progress=False, cluster="sync"))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep")
    (tmp_path / "notes.txt").write_text("hello")
    write_h5(tmp_path / "g.h5", em_like((2, 8, 8)), "/volumes/raw")
    out = tmp_path / "new.ome.zarr"
    args = {
        "missing input": [tmp_path / "nope.tif", out],
        "output exists": [inp, exists],
        "overwrite a non-zarr folder": [inp, precious, "--overwrite"],
        "output inside input": [folder, folder / "o.ome.zarr"],
        "zero chunk": [inp, out, "--chunk-shape", "0,8,8"],
        "zero levels": [inp, out, "--levels", "0"],
        "bad voxel size": [inp, out, "--voxel-size", "50,-1,4"],
        "unsupported input": [tmp_path / "notes.txt", out],
        "hdf5 group": [f"{tmp_path / 'g.h5'}:/volumes", out],
        "output inside the input's OME-Zarr group": [exists / "0", exists / "copy.ome.zarr"],
    }[case]
    before = digest(tmp_path)
    code, _, err = cli("convert", *args, "--no-progress")
    assert_clean_failure(code, err)
    assert digest(tmp_path) == before


def test_read_failure_keeps_a_resumable_output(tmp_path, cli):
    data = em_like((4, 64, 64))
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, data, compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(path) as tf:  # corrupt the last page after the header check
        offset, count = tf.pages[3].dataoffsets[0], tf.pages[3].databytecounts[0]
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * count)
    code, _, err = cli("convert", path, tmp_path / "o.ome.zarr", "--chunk-shape", "1,64,64",
                       "--cluster", "sync", "--no-progress")
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert str(path) in errors[0] and "--resume" in errors[0]
    prov = zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r").attrs["pssr_volume"]
    assert prov["status"] == "running"  # the blocks before the bad page are kept
    np.testing.assert_array_equal(_level(tmp_path / "o.ome.zarr")[:3], data[:3])


def test_info_of_an_hdf5_dataset(tmp_path, cli):
    source = write_h5(tmp_path / "v.h5", em_like((2, 20, 24)), "/volumes/raw",
                      resolution=[40.0, 4.0, 4.0])
    code, text, err = cli("info", source)
    assert code == 0, err
    assert "hdf5 (array '/volumes/raw'): shape (z, y, x) = (2, 20, 24), uint8" in text
    assert "chunks    2x16x16" in text and "voxel     40x4x4 nm" in text
    code, _, err = cli("info", f"{tmp_path / 'v.h5'}:/missing")
    assert_clean_failure(code, err)


@pytest.mark.parametrize(("dtype", "flag", "method"), [
    ("uint64", None, "mode"), ("int32", None, "mode"), ("uint8", None, "mean"),
    ("uint16", "nearest", "nearest"), ("uint64", "mean", "mean"),
])
def test_labels_pool_to_label_values(tmp_path, cli, dtype, flag, method):
    """A label volume (ids {7, 1000000} and a few others) keeps its ids at every level with
    the default pooling for 32- and 64-bit integers; the method is in the metadata."""
    rng = np.random.default_rng(3)
    big = np.dtype(dtype).itemsize >= 4
    ids = np.array([7, 1000000, 2**31 - 5, 12] if big else [7, 200, 101, 12], dtype=dtype)
    labels = ids[rng.integers(0, len(ids), (3, 64, 48))]
    src = zarr.create_array(tmp_path / "labels.zarr", shape=labels.shape, chunks=(1, 32, 32),
                            dtype=dtype, zarr_format=2)
    src[...] = labels
    out = tmp_path / "o.ome.zarr"
    extra = ["--downsample", flag] if flag else []
    code, _, err = cli("convert", tmp_path / "labels.zarr", out, "--voxel-size", "8,8,8",
                       "--chunk-shape", "1,16,16", "--levels", "3", "--cluster", "sync",
                       "--no-progress", *extra)
    assert code == 0, err
    level0 = set(np.unique(_level(out, 0)).tolist())
    assert level0 == set(np.unique(labels).tolist())
    pooled = [set(np.unique(_level(out, k)).tolist()) for k in (1, 2)]
    if method == "mean":
        assert any(not p <= level0 for p in pooled)  # means invent values between ids
    else:
        assert all(p <= level0 for p in pooled)
    for k in (1, 2):  # each level from the one above it, voxel by voxel
        above, level = _level(out, k - 1), _level(out, k)
        f = tuple(2 if a > b else 1 for a, b in zip(above.shape, level.shape))
        if method == "mode":  # counted cell by cell (tests/test_pyramid.py)
            np.testing.assert_array_equal(level, mode_oracle(above, f))
        elif method == "nearest":
            np.testing.assert_array_equal(level, above[::f[0], ::f[1], ::f[2]])
    meta = zarr.open_group(str(out), mode="r").attrs["ome"]["multiscales"][0]["metadata"]
    assert meta["kwargs"]["method"] == method
