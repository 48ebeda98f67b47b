"""The block engine end to end on a real Dask cluster and real Zarr stores.

The central invariant: blockwise output equals whole-volume inference of the
same model, exactly for the pointwise stand-in and within a stated tolerance
for a real (random-initialised) network.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr
from conftest import digest, em_like, write_tiff
from whole_volume import predict_whole

from pssr_volume.config import RunConfig
from pssr_volume.errors import PssrError
from pssr_volume.io.journal import Journal
from pssr_volume.io.ome_zarr import update_provenance
from pssr_volume.plan import make_plan
from pssr_volume.run import run
from pssr_volume.tasks import block_key

# Tolerances (grey levels, uint8) of blockwise vs whole-volume inference for a real
# network. crop keeps only predictions that see their full receptive field: the
# differences are float rounding alone (measured max 1). Blend modes also average in
# predictions near tile edges, where zero padding inside the network changes them;
# linear ramps weight those most (measured max 3; cosine and gaussian 1). The bounds
# are the measured maxima, plus one level for blend modes on other CPUs' kernels.
TOLERANCE = {"crop": 1, "linear": 4, "cosine": 2, "gaussian": 2}


def restore(tmp_path, name, inp, model, scheduler, **kw):
    cfg = RunConfig(input=inp, output=tmp_path / name, model=model, cluster=f"{scheduler}",
                    progress=False, **kw)
    stats = run(cfg)
    return cfg, stats, zarr.open_group(str(cfg.output), mode="r")


GEOMETRIES = [
    # input shape, block shape: odd shapes / edge blocks, block bigger than the volume, z blocks
    ((3, 37, 53), (2, 32, 48)),
    ((2, 21, 19), (1, 512, 512)),
    ((5, 16, 24), (3, 64, 32)),
]


@pytest.mark.parametrize("blend", ["crop", "linear", "cosine", "gaussian"])
@pytest.mark.parametrize(("shape", "block"), GEOMETRIES)
def test_pointwise_blockwise_equals_whole_exactly(tmp_path, models, scheduler, blend, shape, block):
    vol = em_like(shape)
    inp = write_tiff(tmp_path / "in.tif", vol)
    cfg, _, out = restore(tmp_path, "out.ome.zarr", inp, models["pointwise"], scheduler,
                          block_shape=block, blend=blend, halo=(4, 4))
    level0 = out["0"][:]
    np.testing.assert_array_equal(level0, vol.repeat(4, 1).repeat(4, 2))
    np.testing.assert_array_equal(level0, predict_whole(make_plan(
        cfg.model_copy(update={"output": tmp_path / "unused"})).job))


@pytest.mark.parametrize("blend", ["crop", "linear", "cosine", "gaussian"])
def test_network_blockwise_matches_whole_within_tolerance(tmp_path, models, scheduler, blend):
    vol = em_like((3, 70, 90), seed=3)
    inp = write_tiff(tmp_path / "in.tif", vol)
    cfg, _, out = restore(tmp_path, "out.ome.zarr", inp, models["fast"], scheduler,
                          block_shape=(2, 96, 128), blend=blend)
    whole = predict_whole(make_plan(cfg.model_copy(update={"output": tmp_path / "x"})).job)
    diff = np.abs(out["0"][:].astype(int) - whole.astype(int))
    assert diff.max() <= TOLERANCE[blend]
    if blend == "crop":
        assert (diff > 0).mean() < 0.01
    # and the network does something: far from a plain upsample
    assert np.abs(whole.astype(int) - vol.repeat(4, 1).repeat(4, 2)).mean() > 1


def test_multi_section_model_uses_z_context(tmp_path, models, scheduler):
    vol = em_like((5, 40, 36), seed=4)
    inp = write_tiff(tmp_path / "in.tif", vol)
    cfg, _, out = restore(tmp_path, "out.ome.zarr", inp, models["fast3"], scheduler,
                          block_shape=(2, 64, 64))
    job = make_plan(cfg.model_copy(update={"output": tmp_path / "x"})).job
    assert job.grid.halo[0] == 1
    whole = predict_whole(job)
    assert np.abs(out["0"][:].astype(int) - whole.astype(int)).max() <= TOLERANCE["crop"]


def test_model_is_loaded_once_per_worker(tmp_path, models, scheduler):
    from dask.distributed import Client

    from pssr_volume import predict

    def loads() -> int:  # models loaded so far in a worker process (the cache's misses)
        return predict._cached.cache_info().misses

    inp = write_tiff(tmp_path / "in.tif", em_like((4, 64, 64)))
    model = shutil.copy(models["fast"], tmp_path / "fresh.safetensors")  # not cached anywhere yet
    with Client(scheduler) as client:
        before = client.run(loads)
        _, stats, _ = restore(tmp_path, "o.ome.zarr", inp, model, scheduler,
                              block_shape=(1, 64, 64), batch_size=3)
        after = client.run(loads)
    new = [after[w] - before.get(w, 0) for w in after]
    assert stats.blocks_done == 4 * 4 * 4
    assert all(n <= 1 for n in new) and sum(new) >= 1


def test_resume_recomputes_only_missing_blocks_with_identical_bytes(tmp_path, models, scheduler):
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 50, 60), seed=5))
    cfg, stats, out = restore(tmp_path, "o.ome.zarr", inp, models["fast"], scheduler,
                              block_shape=(1, 64, 64), levels=3)
    assert stats.blocks_done == 2 * 4 * 4
    levels = {k: out[k][:] for k in ("0", "1", "2")}
    journal = Journal(cfg.output)
    assert not journal.dir.exists()  # a complete output keeps no journal
    # simulate a killed run: a journal that misses 5 blocks, their level-0 data destroyed
    lost = [(0, 0, 0), (0, 1, 2), (1, 3, 3), (1, 2, 0), (0, 3, 1)]
    grid = make_plan(cfg.model_copy(update={"output": tmp_path / "x"})).job.grid
    keep = sorted({block_key(i) for i in grid.indices()} - {block_key(i) for i in lost})
    journal.dir.mkdir(parents=True)
    (journal.dir / "survivor.log").write_text("".join(k + "\n" for k in keep))
    update_provenance(cfg.output, status="running")
    arr = zarr.open_array(str(cfg.output / "0"), mode="r+")
    for z, y, x in lost:
        arr[z, y * 64:(y + 1) * 64, x * 64:(x + 1) * 64] = 0
    stats2 = run(cfg.model_copy(update={"resume": True}))
    assert stats2.blocks_done == len(lost)
    assert stats2.blocks_skipped == stats.blocks_done - len(lost)
    again = zarr.open_group(str(cfg.output), mode="r")
    for k, v in levels.items():
        np.testing.assert_array_equal(again[k][:], v)
    # resuming a finished run does nothing
    again = run(cfg.model_copy(update={"resume": True}))
    assert again.blocks_done == 0 and again.blocks_skipped == stats.blocks_done


def test_resume_refuses_other_settings(tmp_path, models, scheduler):
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 32, 32)))
    cfg, _, _ = restore(tmp_path, "o.ome.zarr", inp, models["fast"], scheduler,
                        block_shape=(1, 64, 64))
    with pytest.raises(PssrError, match="settings differ.*block_shape"):
        run(cfg.model_copy(update={"resume": True, "block_shape": (1, 128, 128)}))
    with pytest.raises(PssrError, match="settings differ.*model_sha256"):
        run(cfg.model_copy(update={"resume": True, "model": models["pointwise"]}))
    with pytest.raises(PssrError, match="output exists"):
        run(cfg)
    stale = cfg.output / "0" / "stale-file"
    stale.write_text("left over")
    assert run(cfg.model_copy(update={"overwrite": True})).blocks_done == 4
    assert not stale.exists()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_output_is_valid_ome_zarr_with_voxel_sizes_and_provenance(tmp_path, models, scheduler,
                                                                  version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models import open_ome_zarr

    vol = em_like((3, 48, 40))
    inp = write_tiff(tmp_path / "in.tif", vol, voxel=(40.0, 8.0, 8.0))
    inp.chmod(0o444)
    before = digest(inp)
    cfg, _, out = restore(tmp_path, "o.ome.zarr", inp, models["pointwise"], scheduler,
                          block_shape=(1, 64, 64), ngff_version=version, levels=2)
    assert digest(inp) == before
    model = open_ome_zarr(str(cfg.output))  # validates against the NGFF spec
    assert type(model).__name__ == "Image"
    node = next(iter(Reader(parse_url(str(cfg.output)))()))
    shapes = [d.shape for d in node.data]
    assert shapes[0] == (3, 192, 160) and shapes[1] == (3, 96, 80)
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales[0] == pytest.approx([40.0, 2.0, 2.0])
    assert scales[1] == pytest.approx([40.0, 4.0, 4.0])
    # voxel centres: output voxel 0 sits 1.5 output voxels before input voxel 0's centre,
    # and level 1 voxel 0 at the mean of the level-0 voxels it pools
    shifts = [t[1]["translation"] for t in node.metadata["coordinateTransformations"]]
    assert shifts[0] == pytest.approx([0.0, -3.0, -3.0])
    assert shifts[1] == pytest.approx([0.0, -2.0, -2.0])
    np.testing.assert_array_equal(np.asarray(node.data[0]), vol.repeat(4, 1).repeat(4, 2))
    attrs = dict(out.attrs)
    prov = attrs["pssr_volume"]
    assert prov["status"] == "complete" and prov["model"]["sha256"]
    assert prov["settings"]["block_shape"] == [1, 64, 64] and prov["version"]
    assert (cfg.output / ("zarr.json" if version == "0.5" else ".zattrs")).is_file()
