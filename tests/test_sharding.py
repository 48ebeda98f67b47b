"""Sharded output (NGFF 0.5): one writer per shard, same values as unsharded, readable
everywhere; and ``convert`` on the block engine (workers, resume)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import tensorstore as ts
import tifffile
import zarr
from conftest import em_like, levels, write_tiff

from pssr_volume.config import ConvertConfig, RunConfig
from pssr_volume.convert import convert
from pssr_volume.pyramid import plan_levels, plan_stages, shard_shapes, task_regions
from pssr_volume.run import run


def _values(out) -> list[np.ndarray]:
    names = sorted((p.name for p in out.iterdir() if p.name.isdigit()), key=int)
    return [zarr.open_array(str(out / n), mode="r")[...] for n in names]


def _data_files(level_dir) -> int:
    return sum(1 for p in level_dir.rglob("*") if p.is_file() and not p.name.startswith(
        ("zarr.json", ".z")))


@pytest.mark.parametrize("seed", range(40))
def test_every_shard_lies_in_exactly_one_task_region(seed):
    """The geometry behind "one writer per shard": for random volumes, voxel sizes,
    chunks, blocks and requested shards, the regions the tasks of each stage write at
    each level tile that level, and every shard of the level falls inside one region."""
    rng = np.random.default_rng(seed)
    chunk = tuple(int(c) for c in rng.choice([1, 2, 4, 8], 3))
    block = tuple(c * int(k) for c, k in zip(chunk, rng.integers(1, 5, 3)))
    shard = tuple(b // int(d) if b % int(d) == 0 and (b // int(d)) % c == 0 else b
                  for b, c, d in zip(block, chunk, rng.choice([1, 2], 3)))
    shape = tuple(int(n) for n in rng.integers(1, 90, 3))
    voxel = (float(rng.choice([1.0, 4.0, 10.0])), 1.0, 1.0)
    lv = plan_levels(shape, voxel, None, min_size=4)
    stages = plan_stages(lv, block, chunk)
    for requested in (None, shard):
        shards = shard_shapes(lv, stages, chunk, requested)
        for st in stages:
            for k in range(st.first, st.last + 1):
                f = [math.prod(x.factors[a] for x in lv[st.first + 1 : k + 1]) for a in range(3)]
                region = tuple(t // ff for t, ff in zip(st.task, f))
                assert all(r % c == 0 for r, c in zip(shards[k], chunk))
                assert all(r % s == 0 for r, s in zip(region, shards[k]))
                owners = {}
                for i, box in enumerate(task_regions(lv[k].shape, region)):
                    starts = [range(a, b, s) for (a, b), s in zip(box, shards[k])]
                    for origin in itertools.product(*starts):
                        assert origin not in owners  # a second writer
                        owners[origin] = i
                expected = math.prod(math.ceil(n / s) for n, s in zip(lv[k].shape, shards[k]))
                assert len(owners) == expected


def test_sharded_output_equals_unsharded_and_opens_everywhere(tmp_path, models):
    from ome_zarr_models import open_ome_zarr

    inp = write_tiff(tmp_path / "in.tif", em_like((5, 96, 80), seed=4))
    common = {"input": inp, "model": models["fast"], "cluster": "sync", "progress": False,
              "block_shape": (2, 128, 128), "chunk_shape": (1, 64, 64), "levels": 4}
    outs = {
        "default": RunConfig(output=tmp_path / "a.ome.zarr", **common),
        "small shards": RunConfig(output=tmp_path / "b.ome.zarr", shard_shape=(2, 64, 128),
                                  **common),
        "unsharded 0.4": RunConfig(output=tmp_path / "c.ome.zarr", ngff_version="0.4",
                                   **common),
    }
    stats = {name: run(cfg) for name, cfg in outs.items()}
    ref = _values(outs["unsharded 0.4"].output)
    for name in ("default", "small shards"):
        got = _values(outs[name].output)
        assert len(got) == len(ref) >= 3
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a, b)
    out = outs["default"].output
    blocks = stats["default"].blocks_total
    for k, arr in enumerate(ref):
        level = zarr.open_array(str(out / str(k)), mode="r")
        assert level.shards is not None and level.chunks == (1, 64, 64)
        assert _data_files(out / str(k)) <= blocks  # one file per write block, at most
        store = ts.open({"driver": "zarr3", "kvstore": {"driver": "file",
                                                         "path": str(out / str(k))}}).result()
        np.testing.assert_array_equal(store.read().result(), arr)
    assert _data_files(outs["unsharded 0.4"].output / "0") > blocks  # a file per chunk
    open_ome_zarr(str(out))  # validates against the NGFF 0.5 spec


def test_convert_with_workers_equals_in_process_and_resumes_after_a_read_failure(tmp_path,
                                                                                   cli):
    data = em_like((6, 64, 96), seed=9)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data, compression="zlib", photometric="minisblack")
    args = ["--chunk-shape", "1,32,32", "--block-shape", "1,64,64", "--voxel-size", "8,4,4",
            "--no-progress"]
    ref, par = tmp_path / "ref.ome.zarr", tmp_path / "par.ome.zarr"
    convert(ConvertConfig(input=path, output=ref, chunk_shape=(1, 32, 32),
                          block_shape=(1, 64, 64), voxel_size=(8, 4, 4), cluster="sync",
                          progress=False))
    code, _, err = cli("convert", path, par, *args, "--cluster", "local", "--workers", "2")
    assert code == 0, err
    assert levels(par) == levels(ref)  # the same bytes, whatever ran the tasks

    with tifffile.TiffFile(path) as tf:  # a damaged page: the conversion stops there
        offset, count = tf.pages[4].dataoffsets[0], tf.pages[4].databytecounts[0]
    good = path.read_bytes()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * count)
    out = tmp_path / "out.ome.zarr"
    code, _, err = cli("convert", path, out, *args, "--cluster", "sync")
    assert code == 2 and "--resume" in err
    path.write_bytes(good)  # the page is recovered (the tool never writes its input)
    code, _, err = cli("convert", path, out, *args, "--cluster", "sync", "--resume")
    assert code == 0, err
    assert levels(out) == levels(ref)
