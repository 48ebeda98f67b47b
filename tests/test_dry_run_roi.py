"""``run --dry-run`` (the plan and its cost, nothing written) and ``run --roi`` (a
sub-volume, placed where it lies in the input)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from conftest import digest, em_like, write_tiff

from pssr_volume.config import RunConfig
from pssr_volume.estimate import estimate
from pssr_volume.plan import make_plan


def _translation(out, level: str = "0") -> list[float]:
    ms = zarr.open_group(str(out), mode="r").attrs["ome"]["multiscales"][0]
    ds = next(d for d in ms["datasets"] if d["path"] == level)
    return next(t["translation"] for t in ds["coordinateTransformations"]
                if t["type"] == "translation")


def test_dry_run_writes_nothing_and_prints_the_plan(tmp_path, cli, models):
    inp = write_tiff(tmp_path / "in.tif", em_like((4, 128, 128)))
    before = digest(tmp_path)
    out = tmp_path / "o.ome.zarr"
    code, _, err = cli("run", inp, out, "--model", models["fast"], "--block-shape", "2,256,256",
                       "--dry-run")
    assert code == 0, err
    assert not out.exists() and digest(tmp_path) == before
    assert "blocks  8 of 2x256x256" in err and "tasks   8 block(s)" in err
    assert "GFLOP per output Mpx" in err and "CPU core-hours" in err and "GPU-hours" in err
    assert "level 0 4x512x512" in err and "dry run: nothing was written" in err


def test_estimate_counts_what_a_run_does(tmp_path, models):
    from pssr_volume.run import run

    inp = write_tiff(tmp_path / "in.tif", em_like((3, 100, 90)))
    cfg = RunConfig(input=inp, output=tmp_path / "o.ome.zarr", model=models["fast"],
                    cluster="sync", block_shape=(2, 128, 128), chunk_shape=(1, 64, 64),
                    levels=3, progress=False)
    est = estimate(make_plan(cfg))
    stats = run(cfg)
    assert est.blocks == stats.blocks_total and est.pyramid_tasks == stats.pyramid_tasks
    for k, files in enumerate(est.level_files):  # one data file per shard
        written = [p for p in (cfg.output / str(k)).rglob("*") if p.is_file()
                   and p.name != "zarr.json"]
        assert len(written) == files
    # the halo: the network computes more output pixels than the volume has
    assert est.computed_mpx * 1e6 > 3 * 400 * 360 and est.network_gflop > 0


def test_roi_restores_the_sub_volume_in_place(tmp_path, cli, models):
    data = em_like((4, 128, 128), seed=2)
    inp = write_tiff(tmp_path / "in.tif", data)
    full, part = tmp_path / "full.ome.zarr", tmp_path / "part.ome.zarr"
    args = ["--model", models["pointwise"], "--cluster", "sync", "--no-progress"]
    assert cli("run", inp, full, *args)[0] == 0
    code, _, err = cli("run", inp, part, *args, "--roi", "1:3,32:96,32:96")
    assert code == 0, err
    level0 = zarr.open_array(str(part / "0"), mode="r")[...]
    assert level0.shape == (2, 256, 256)
    assert _translation(part) == pytest.approx([50, 32 * 18.4 - 6.9, 32 * 18.4 - 6.9])
    # a pointwise model has no context: the region equals that of the whole restoration
    whole = zarr.open_array(str(full / "0"), mode="r")[1:3, 128:384, 128:384]
    np.testing.assert_array_equal(level0, whole)


@pytest.mark.parametrize("roi", ["0:5,0:64,0:64", "1:1,0:8,0:8", "0:2,120:140,0:8", "0:2,0:8"])
def test_roi_outside_the_volume_is_one_clear_error(tmp_path, cli, models, roi):
    inp = write_tiff(tmp_path / "in.tif", em_like((4, 128, 128)))
    out = tmp_path / "o.ome.zarr"
    code, _, err = cli("run", inp, out, "--model", models["pointwise"], "--roi", roi,
                       "--cluster", "sync")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "roi" in lines[0], err
    assert not out.exists()
