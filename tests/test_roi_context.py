"""``run --roi``: a region of interest reads its halo from the input around it (reflected
only at the volume's own border), so its output equals the same region of a full run:
exactly for the pointwise stand-in, within the blockwise tolerance for real networks."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from conftest import em_like, write_tiff

from pssr_volume.bundled import DEFAULT_MODEL, bundled_models
from pssr_volume.config import RunConfig
from pssr_volume.estimate import estimate
from pssr_volume.plan import make_plan
from pssr_volume.run import run
from pssr_volume.tasks import read_tile

Roi = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
CROP = 1  # grey levels: the blockwise-vs-whole tolerance of `crop` (test_pipeline.TOLERANCE)


def restore(inp, out, model, roi: Roi | None = None, cluster: str = "sync", **kw):
    cfg = RunConfig(input=inp, output=out, model=model, cluster=cluster, progress=False,
                    roi=roi, **kw)
    run(cfg)
    return cfg, zarr.open_group(str(out), mode="r")


def region(full: np.ndarray, roi: Roi, scale: int = 4) -> np.ndarray:
    """The output voxels of ``roi`` (input voxels) in a full run's level 0."""
    (z0, z1), (y0, y1), (x0, x1) = roi
    return full[z0:z1, y0 * scale:y1 * scale, x0 * scale:x1 * scale]


def grey_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int))


def translation(group, level: str = "0") -> list[float]:
    ds = next(d for d in group.attrs["ome"]["multiscales"][0]["datasets"] if d["path"] == level)
    return next(t["translation"] for t in ds["coordinateTransformations"]
                if t["type"] == "translation")


# odd shapes: ROI starts on and off the network grid (4), touching each border, smaller
# than a block, a single section
ROIS: list[Roi] = [
    ((1, 4), (9, 30), (13, 50)),
    ((0, 5), (0, 37), (0, 53)),  # the whole volume
    ((2, 5), (21, 37), (40, 53)),  # touches the far borders
    ((0, 1), (0, 7), (5, 11)),  # touches the near borders, much smaller than a block
    ((3, 4), (17, 18), (30, 31)),  # one voxel
]


def test_tiles_read_the_surrounding_input_on_the_whole_volume_grid(tmp_path, models):
    vol = em_like((5, 37, 53))
    inp = write_tiff(tmp_path / "in.tif", vol)
    cfg = RunConfig(input=inp, output=tmp_path / "o", model=models["fast3"],
                    block_shape=(2, 32, 48), halo=(8, 8), cluster="sync")
    full = make_plan(cfg).job
    for roi in ROIS:
        job = make_plan(cfg.model_copy(update={"roi": roi})).job
        origin = tuple(a for a, _ in roi)
        assert job.grid.halo == full.grid.halo == (1, 8, 8)
        for block in job.grid:
            whole_tile = tuple((a + o, b + o) for (a, b), o in zip(block.tile, origin))
            # the tile covers the core plus the halo, and starts on the full run's grid
            for axis in (1, 2):
                (t0, t1), (c0, c1) = whole_tile[axis], block.core[axis]
                assert t0 % 4 == 0 and (t1 - t0) % 4 == 0
                assert t0 <= c0 + origin[axis] - 8 and t1 >= c1 + origin[axis] + 8
            # and it holds what a full run's read of the same input box holds
            np.testing.assert_array_equal(read_tile(job, block.tile),
                                          read_tile(full, whole_tile))


@pytest.mark.parametrize("roi", ROIS)
def test_pointwise_roi_equals_the_full_run_exactly(tmp_path, models, roi):
    vol = em_like((5, 37, 53), seed=1)
    inp = write_tiff(tmp_path / "in.tif", vol)
    kw = {"block_shape": (2, 32, 48), "halo": (4, 4)}
    _, full = restore(inp, tmp_path / "full.ome.zarr", models["pointwise"], **kw)
    _, part = restore(inp, tmp_path / "roi.ome.zarr", models["pointwise"], roi, **kw)
    np.testing.assert_array_equal(part["0"][:], region(full["0"][:], roi))


@pytest.mark.parametrize(("model", "rois"), [("fast", [ROIS[0], ROIS[2], ROIS[3]]),
                                             ("fast3", [ROIS[0], ROIS[4]])])
def test_network_roi_matches_the_full_run(tmp_path, models, model, rois):
    """A random pssr-fast on odd ROIs, on and off the grid, at borders, smaller than a block;
    with 3 sections the z halo comes from sections outside the ROI."""
    vol = em_like((5, 37, 53), seed=2)
    inp = write_tiff(tmp_path / "in.tif", vol)
    kw = {"block_shape": (2, 64, 96)}
    cfg, full = restore(inp, tmp_path / "full.ome.zarr", models[model], **kw)
    for i, roi in enumerate(rois):
        rcfg, part = restore(inp, tmp_path / f"roi{i}.ome.zarr", models[model], roi, **kw)
        diff = grey_diff(part["0"][:], region(full["0"][:], roi))
        assert diff.max() <= CROP, (roi, diff.max())
        assert (diff > 0).mean() < 0.01, roi
        # placed where it lies in the full run: level 0 voxel j is full voxel j + 4 * origin
        voxel = full.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]
        step = [o * v for o, v in zip((roi[0][0], 4 * roi[1][0], 4 * roi[2][0]), voxel["scale"])]
        assert translation(part) == pytest.approx(
            [t + s for t, s in zip(translation(full), step)])


def test_adjacent_rois_match_the_full_run_across_their_border(tmp_path, models, scheduler):
    vol = em_like((2, 40, 90), seed=3)
    inp = write_tiff(tmp_path / "in.tif", vol)
    kw = {"block_shape": (2, 64, 64)}
    _, full = restore(inp, tmp_path / "full.ome.zarr", models["fast"], cluster=scheduler, **kw)
    left: Roi = ((0, 2), (5, 35), (3, 42))
    right: Roi = ((0, 2), (5, 35), (42, 87))  # meets ``left`` at x = 42, off the grid
    parts = [restore(inp, tmp_path / f"{n}.ome.zarr", models["fast"], r, cluster=scheduler,
                     **kw)[1]["0"][:] for n, r in (("left", left), ("right", right))]
    joined = np.concatenate(parts, axis=2)
    ref = region(full["0"][:], ((0, 2), (5, 35), (3, 87)))
    diff = grey_diff(joined, ref)
    assert diff.max() <= CROP and (diff > 0).mean() < 0.01
    meet = 4 * (42 - 3)  # where the two ROIs meet, in the joined output
    assert diff[..., meet - 16:meet + 16].max() <= CROP


def test_dry_run_of_a_roi_counts_what_it_runs(tmp_path, models):
    inp = write_tiff(tmp_path / "in.tif", em_like((4, 100, 90)))
    cfg = RunConfig(input=inp, output=tmp_path / "o.ome.zarr", model=models["fast"],
                    cluster="sync", block_shape=(2, 128, 128), progress=False,
                    roi=((1, 4), (13, 77), (2, 61)))
    est = estimate(make_plan(cfg))
    stats = run(cfg)
    assert est.blocks == stats.blocks_total == 2 * 2 * 2
    # the network computes the ROI plus its halo, rounded out to the grid
    assert est.computed_mpx * 1e6 >= 3 * (64 + 2 * 28) * (59 + 2 * 28) * 16


@pytest.mark.slow
def test_bundled_model_roi_matches_the_full_run(tmp_path):
    """The bundled noise-aware model on a demo crop: the intensity range and noise model
    come from the whole volume, the halo from around the ROI."""
    if DEFAULT_MODEL not in bundled_models():
        pytest.skip("bundled model not built")
    from pssr_volume.demo import make_demo_volume

    _, lr = make_demo_volume((2, 64, 64), seed=1)
    inp = write_tiff(tmp_path / "demo.tif", lr)
    cfg, full = restore(inp, tmp_path / "full.ome.zarr", DEFAULT_MODEL)
    roi: Roi = ((1, 2), (19, 54), (6, 41))
    rcfg, part = restore(inp, tmp_path / "roi.ome.zarr", DEFAULT_MODEL, roi)
    settings = [g.attrs["pssr_volume"]["settings"] for g in (full, part)]
    assert settings[0]["intensity_range"] == settings[1]["intensity_range"]
    assert settings[0]["noise"] == settings[1]["noise"]
    diff = grey_diff(part["0"][:], region(full["0"][:], roi))
    assert diff.max() <= CROP and (diff > 0).mean() < 0.01
