"""``pssr-volume crappify``: degrade a volume into a TIFF or an OME-Zarr, lazily and seeded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from conftest import em_like, write_tiff

from pssr_volume.crappify.presets import get_preset
from pssr_volume.io.inputs import open_input

ALL = (slice(None), slice(None), slice(None))


@pytest.fixture
def hr(tmp_path):
    vol = em_like((3, 42, 40), seed=1)
    return write_tiff(tmp_path / "hr.tif", vol, voxel=(50.0, 4.6, 4.6)), vol


@pytest.mark.parametrize("name", ["lr.tif", "lr.ome.zarr"])
def test_writes_the_degraded_volume_with_scaled_voxels(tmp_path, cli, hr, name):
    src, vol = hr
    out = tmp_path / name
    code, _, err = cli("crappify", src, out, "--preset", "pssr2", "--scale", "4", "--seed", "3")
    assert code == 0, err
    assert "cropping 2 row(s)" in err  # 42 rows -> 40, a multiple of 4
    lr = open_input(out)
    assert lr.shape == (3, 10, 10) and lr.dtype == "uint8"
    assert lr.voxel_size == pytest.approx((50.0, 18.4, 18.4))
    data = lr.read(ALL)
    # each section is the preset applied with default_rng([seed, z]) to value / 255
    pipe = get_preset("pssr2", 4)
    z1 = pipe(vol[1, :40, :40] / 255.0, np.random.default_rng([3, 1]))
    np.testing.assert_array_equal(data[1], np.clip(np.rint(z1 * 255), 0, 255).astype(np.uint8))
    assert abs(float(data.mean()) - float(vol[:, :40, :40].mean())) < 2


def test_same_seed_same_bytes_other_seed_differs(tmp_path, cli, hr):
    src, _ = hr
    for name, seed in (("a.tif", 0), ("b.tif", 0), ("c.tif", 1)):
        assert cli("crappify", src, tmp_path / name, "--seed", seed)[0] == 0
    a, b, c = (tifffile.imread(tmp_path / n) for n in ("a.tif", "b.tif", "c.tif"))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    side = json.loads((tmp_path / "a.tif.crappify.json").read_text())
    assert side["preset"] == "pssr-em" and side["pipeline"]["steps"][1]["kind"] == "downsample"


def test_user_errors_are_one_line(tmp_path, cli, hr):
    src, _ = hr
    (tmp_path / "exists.tif").write_bytes(b"x")
    for args, words in [
        ((src, tmp_path / "exists.tif"), "exists"),
        ((src, tmp_path / "x.png"), "*.tif"),
        ((src, tmp_path / "x.tif", "--preset", "nope"), "unknown crappifier preset"),
        ((tmp_path / "missing.tif", tmp_path / "x.tif"), "not found"),
    ]:
        code, _, err = cli("crappify", *args)
        assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.tif").exists()


def test_reads_an_hdf5_dataset(tmp_path, cli, hr):
    h5py = pytest.importorskip("h5py")
    _, vol = hr
    with h5py.File(tmp_path / "hr.h5", "w") as f:
        f.create_dataset("volumes/raw", data=vol[:, :40, :40])
    code, _, err = cli("crappify", f"{tmp_path / 'hr.h5'}:/volumes/raw", tmp_path / "lr.tif",
                       "--preset", "pssr2", "--seed", "3")
    assert code == 0, err
    ref = tmp_path / "ref.tif"
    write_tiff(ref, vol[:, :40, :40])
    assert cli("crappify", ref, tmp_path / "ref_lr.tif", "--preset", "pssr2", "--seed", "3")[0] == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "lr.tif"),
                                  tifffile.imread(tmp_path / "ref_lr.tif"))


def test_crappify_imports_no_zarr_library_only_io():
    """OME-Zarr has one owner (``pssr_volume.io``): the crappify package imports none of
    the zarr libraries itself (lint-imports checks the same, this reads the source)."""
    import ast
    from pathlib import Path

    import pssr_volume.crappify

    banned = {"zarr", "ome_zarr", "numcodecs", "tensorstore"}
    found = []
    for path in Path(pssr_volume.crappify.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in banned]
    assert not found


def test_an_ome_zarr_output_is_a_checked_pssr_volume_output(tmp_path, cli, hr):
    from pssr_volume.io.ome_zarr import read_provenance, storage_of

    src, vol = hr
    vol[0] = 0  # an all-zero section: its chunk equals the fill value and is still stored
    write_tiff(src, vol, voxel=(50.0, 4.6, 4.6))
    out = tmp_path / "lr.ome.zarr"
    assert cli("crappify", src, out, "--preset", "pssr2", "--scale", "4")[0] == 0
    prov = read_provenance(out)
    assert prov is not None and prov["operation"] == "crappify" and prov["status"] == "complete"
    assert prov["preset"] == "pssr2" and storage_of(prov)["every_chunk_stored"]
    assert not open_input(out).read(ALL)[0].any()
    code, _, err = cli("verify", out)
    assert code == 0, err
    code, _, err = cli("crappify", src, out)
    assert code == 2 and "output exists" in err


@pytest.mark.parametrize("name", ["lr.tif", "lr.ome.zarr"])
def test_a_failure_leaves_no_partial_output(tmp_path, cli, hr, monkeypatch, name):
    from pssr_volume.crappify import volume

    def failing(*args, **kwargs):
        yield np.zeros((10, 10), np.uint8)
        raise RuntimeError("boom")

    monkeypatch.setattr(volume, "degrade_sections", failing)
    code, _, err = cli("crappify", hr[0], tmp_path / name, "--scale", "4")
    assert code == 1 and "boom" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.tif"]
