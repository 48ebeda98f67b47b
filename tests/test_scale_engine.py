"""The engine's own CPU work per output voxel (issue 21 item 6; benchmarks/bench_write.py
measures it): the data-consistency figure degrades the stored integers back by exact integer
sums, and the worker processes this tool starts allocate from glibc's main heap."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import QUIET, em_like, periodic_work, write_tiff

from pssr_volume import stored_voxels as stored_voxels_module
from pssr_volume.allocator import WORKER_ENVIRON
from pssr_volume.cluster.executors import open_executor
from pssr_volume.cluster.spec import check_cluster
from pssr_volume.config import RunConfig
from pssr_volume.consistency import area_mean, block_residual
from pssr_volume.intensity import denormalize, normalize
from pssr_volume.plan import make_plan
from pssr_volume.pyramid import downsample
from pssr_volume.stored_voxels import stored_voxels
from pssr_volume.tasks import block_consistency, predict_block, read_tile


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "int32", "uint64"])
def test_area_mean_of_integers_equals_the_float64_mean(dtype):
    rng = np.random.default_rng(len(dtype))
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, size=(3, 48, 72), dtype=dtype, endpoint=True)
    for scale in (1, 2, 3, 4, 8):
        for view in (a, a[:, ::2, 1:65]):  # and a strided, offset view
            z, y, x = view.shape
            if y % scale or x % scale:
                continue
            mean = view.reshape(z, y // scale, scale, x // scale, scale).mean(
                axis=(2, 4), dtype=np.float64)
            got = area_mean(view, scale)
            assert got.dtype == np.float64 and np.array_equal(got, mean), (dtype, scale)


def test_a_blocks_consistency_is_the_mean_of_its_normalised_voxels(tmp_path, models):
    """Pooling the stored integers first, then normalising the means (affine), is the figure
    of the normalised voxels pooled, to float32 rounding (which the voxels' normalisation
    has and the means' in float64 has not)."""
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 40, 56), seed=4))
    job = make_plan(RunConfig(input=inp, output=tmp_path / "o", model=models["pointwise"],
                              cluster="sync", block_shape=(2, 64, 64))).job
    block = job.grid.block_at((0, 1, 1))
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(2, 64, 64), dtype=np.uint8)
    fast = block_consistency(job, read_tile(job, block.core), data)
    slow = block_residual(normalize(data, *job.norm), read_tile(job, block.core),
                          job.grid.scale, job.noise)
    assert fast.count == slow.count == 2 * 16 * 16
    assert fast.sum_sq == pytest.approx(slow.sum_sq, rel=1e-6)
    assert fast.sum_var == pytest.approx(slow.sum_var, rel=1e-12)


def test_local_workers_allocate_from_the_main_heap_and_keep_dask_quiet(tmp_path):
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 16, 16)))
    spec = check_cluster(RunConfig(input=inp, output=tmp_path / "o", cluster="local",
                                   workers=1, device="cpu"))
    with open_executor(spec) as ex:
        seen = ex.client.run(lambda: {k: os.environ.get(k) for k in WORKER_ENVIRON})
        workers = ex.client.run(periodic_work)
        scheduler = ex.client.run_on_scheduler(periodic_work)
    assert list(seen.values()) == [WORKER_ENVIRON]
    # cluster.settings: no statistical profiler sampling the tasks, rarer ticks
    assert list(workers.values()) == [QUIET] and scheduler == QUIET


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "float32"])
@pytest.mark.parametrize("factors", [None, (1, 2, 2), (2, 2, 2)])
@pytest.mark.parametrize("cell", [0, 2, 3, 4])
def test_the_one_pass_finish_equals_its_steps_on_the_whole_block(dtype, factors, cell,
                                                                 monkeypatch):
    """Stored voxels, the first pooled level and the consistency cell sums, made slab by
    slab in one pass, are the bytes of denormalising, pooling and summing the whole block;
    odd section counts, a cropped (strided) view and slabs of a few rows (a partial last
    slab included)."""
    monkeypatch.setattr(stored_voxels_module, "SLAB_BYTES", 4 * 96 * 10)
    rng = np.random.default_rng(cell + len(dtype))
    values = rng.normal(0.5, 0.4, size=(5, 300, 96)).astype(np.float32)
    for view in (values, values[:, 6:294, 12:84]):
        done = stored_voxels(view, 0.1, 0.9, dtype, factors, cell)
        data = denormalize(view, 0.1, 0.9, dtype)
        assert done.data.dtype == np.dtype(dtype) and np.array_equal(done.data, data)
        if factors is None:
            assert done.pooled is None
        else:
            assert np.array_equal(done.pooled, downsample(data, factors))
        if cell == 0 or dtype == "float32":
            assert done.sums is None
        else:
            assert np.array_equal(done.sums, area_mean(data, cell) * cell * cell)



@pytest.mark.parametrize("model", ["fast", "fast3"])
def test_the_observed_core_is_the_part_of_the_tile_the_network_read(tmp_path, models, model):
    """The consistency figure's reference, cut from the tile the network read (halo and, for
    three sections in, the neighbouring sections included), equals a fresh read of the block's
    input core: for edge and interior blocks, and inside a region of interest."""
    inp = write_tiff(tmp_path / "in.tif", em_like((6, 70, 90), seed=6))
    for roi in (None, ((1, 5), (10, 60), (20, 84))):
        job = make_plan(RunConfig(input=inp, output=tmp_path / f"o{roi is None}",
                                  model=models[model], cluster="sync", block_shape=(2, 96, 128),
                                  roi=roi)).job
        for index in job.grid.indices():
            _, _, core = predict_block(job, index)
            np.testing.assert_array_equal(core, read_tile(job, job.grid.block_at(index).core))
