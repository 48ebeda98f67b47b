"""``pssr_volume.open_ome_zarr``: an OME-Zarr level as a lazy xarray.DataArray in nm."""

from __future__ import annotations

import subprocess
import sys

import dask.array as da
import numpy as np
import pytest
import zarr
from conftest import em_like, write_tiff

import pssr_volume
from pssr_volume.config import ConvertConfig
from pssr_volume.convert import convert
from pssr_volume.errors import PssrError


def test_x4_output_of_18_4_nm_data_has_4_6_nm_coordinates(tmp_path, cli, models, scheduler):
    data = em_like((2, 16, 20), seed=2)
    inp = write_tiff(tmp_path / "in.tif", data, voxel=(50.0, 18.4, 18.4))
    out = tmp_path / "out.ome.zarr"
    code, _, err = cli("run", inp, out, "--model", models["pointwise"], "--cluster", scheduler,
                       "--no-progress", "--levels", "2")
    assert code == 0, err
    image = pssr_volume.open_ome_zarr(out)
    assert image.dims == ("z", "y", "x") and image.shape == (2, 64, 80)
    assert isinstance(image.data, da.Array)  # lazy: nothing read yet
    np.testing.assert_allclose(np.diff(image.x.values), 4.6)
    np.testing.assert_allclose(np.diff(image.y.values), 4.6)
    np.testing.assert_allclose(image.z.values, [0.0, 50.0])
    assert image.attrs["units"] == "nm" and image.x.attrs["units"] == "nm"
    assert image.attrs["voxel_size"] == pytest.approx((50.0, 4.6, 4.6))
    assert image.attrs["pssr_volume"]["status"] == "complete"
    np.testing.assert_array_equal(image.values, data.repeat(4, 1).repeat(4, 2))
    pixel = image.sel(z=50.0, y=4.6 * 9, x=4.6 * 13, method="nearest")
    assert int(pixel) == data[1, 9 // 4, 13 // 4]
    coarse = pssr_volume.open_ome_zarr(out, level=1)
    np.testing.assert_allclose(np.diff(coarse.x.values), 9.2)
    assert coarse.shape == (2, 32, 40) and coarse.attrs["level"] == "1"
    assert pssr_volume.open_ome_zarr(out / "1").shape == coarse.shape  # a level path
    assert pssr_volume.open_ome_zarr(out, level=-1).attrs["level"] == "1"
    with pytest.raises(PssrError, match="level 2 does not exist"):
        pssr_volume.open_ome_zarr(out, level=2)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_scale_translation_and_units(tmp_path, zarr_format):
    group = zarr.open_group(tmp_path / "t.zarr", mode="w", zarr_format=zarr_format)
    group.create_array("s0", shape=(1, 3, 4, 5), chunks=(1, 1, 2, 5), dtype="uint16")
    group["s0"][...] = np.arange(60, dtype=np.uint16).reshape(1, 3, 4, 5)
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    ms = {"axes": axes, "name": "cells", "datasets": [{"path": "s0", "coordinateTransformations": [
        {"type": "scale", "scale": [1, 0.05, 0.004, 0.004]},
        {"type": "translation", "translation": [0, 1.0, 0.1, 0.2]}]}],
        "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 2, 2]}]}
    if zarr_format == 3:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        group.attrs["multiscales"] = [{"version": "0.4", **ms}]
    image = pssr_volume.open_ome_zarr(tmp_path / "t.zarr")
    assert image.name == "cells" and image.shape == (3, 4, 5)
    assert image.data.chunks == ((1, 1, 1), (2, 2), (5,))  # dask chunks follow zarr chunks
    np.testing.assert_allclose(image.z.values, [1000.0, 1050.0, 1100.0])
    np.testing.assert_allclose(image.y.values, 200.0 + 8.0 * np.arange(4))
    np.testing.assert_allclose(image.x.values, 400.0 + 8.0 * np.arange(5))
    np.testing.assert_array_equal(image.values, np.arange(60).reshape(3, 4, 5))


def test_converted_2d_image_and_unknown_units(tmp_path):
    data = em_like((1, 12, 10))
    convert(ConvertConfig(input=write_tiff(tmp_path / "i.tif", data, voxel=None),
                          output=tmp_path / "i.ome.zarr", voxel_size=(1, 5, 5), progress=False,
                          cluster="sync"))
    image = pssr_volume.open_ome_zarr(tmp_path / "i.ome.zarr")
    assert image.shape == (1, 12, 10) and image.attrs["pssr_volume"]["operation"] == "convert"
    np.testing.assert_allclose(image.x.values, 5.0 * np.arange(10))
    group = zarr.open_group(tmp_path / "n.zarr", mode="w", zarr_format=2)
    group.create_array("0", shape=(4, 5), dtype="uint8")
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [3, 3]}]}]}]
    image = pssr_volume.open_ome_zarr(tmp_path / "n.zarr")
    assert image.shape == (1, 4, 5) and image.attrs["units"] == "unknown"
    np.testing.assert_allclose(image.y.values, 3.0 * np.arange(4))


def test_not_an_ome_zarr(tmp_path):
    zarr.open_group(tmp_path / "g.zarr", mode="w").create_array("raw", shape=(2, 2), dtype="u1")
    with pytest.raises(PssrError, match="no OME-Zarr multiscales"):
        pssr_volume.open_ome_zarr(tmp_path / "g.zarr")
    with pytest.raises(PssrError, match="not a zarr store"):
        pssr_volume.open_ome_zarr(tmp_path)


def test_package_import_stays_cheap():
    code = ("import sys, pssr_volume; heavy = [m for m in ('torch', 'zarr', 'xarray', 'dask') "
            "if m in sys.modules]; assert not heavy, heavy; "
            "assert callable(pssr_volume.open_ome_zarr); assert 'xarray' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_segmentation_example_runs_on_a_fresh_machine(tmp_path, models, monkeypatch, capsys):
    """examples/restore_and_segment.py without ../shared: the synthetic demo volume."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "restore_and_segment.py"
    spec = importlib.util.spec_from_file_location("restore_and_segment", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(example, "STACK1", tmp_path / "no-shared-data")
    summary = example.main(["--model", str(models["fast"]), "--out", str(tmp_path / "work")])
    assert set(summary) == {"pssr-volume", "bicubic"}
    assert all(0 <= are <= 1 and vi >= 0 for are, vi in summary.values())
    text = capsys.readouterr().out
    assert "synthetic demo volume" in text and "pixel 4.60 nm" in text
    assert pssr_volume.open_ome_zarr(tmp_path / "work" / "restored.ome.zarr").shape == (3, 384, 384)
