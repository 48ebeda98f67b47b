"""``--output-format precomputed``: neuroglancer precomputed, sharded, one shard per written
region (pssr_volume/io/precomputed_layout.py), written through tensorstore and read back by
CloudVolume, the connectomics world's reader.

The outputs hold the same voxels as the OME-Zarr run of the same input at every level; a
run killed mid-way resumes to the same bytes (the journal and the lease work as for
OME-Zarr); ``verify`` finds a damaged chunk (gzip CRC-32) and a lost shard, and
``--resume --verify`` rewrites them; the layout rule is checked against tensorstore's own
reading of the shards; outputs on S3 and GCS equal the local ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
import zarr
from conftest import (
    blocks_done,
    em_like,
    finish,
    levels,
    start,
    wait_for,
    write_tiff,
)
from test_gcs import gs  # noqa: F401 - fixture: fake-gcs-server
from test_object_storage import keys, level_bytes, s3  # noqa: F401 - fixture: moto server

from pssr_volume.cli import main
from pssr_volume.io.ome_zarr import read_provenance
from pssr_volume.io.precomputed_layout import (
    choose_chunk,
    morton_code,
    plan_scales,
    prefix_counts,
)
from pssr_volume.pyramid import Level

FAST = ["--cluster", "sync", "--no-progress"]
RUN = ["--block-shape", "2,512,512", *FAST]  # 16 blocks of an 8 x 256 x 256 input


def cloudvolume(path: Path | str, mip: int = 0):
    from cloudvolume import CloudVolume

    return CloudVolume(f"file://{path}", mip=mip, progress=False, fill_missing=False)


def read_zyx(vol) -> np.ndarray:
    """All voxels of a CloudVolume scale, as (z, y, x)."""
    return np.asarray(vol[vol.bounds])[..., 0].transpose(2, 1, 0)


def ok(*args: object) -> None:
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def restored(tmp_path_factory, models):
    """An 8 x 256 x 256 input restored into OME-Zarr and into precomputed (the same
    model, blocks and levels)."""
    d = tmp_path_factory.mktemp("precomputed")
    inp = write_tiff(d / "in.tif", em_like((8, 256, 256), seed=24))
    args = ["--model", models["pointwise"], *RUN]
    ok("run", inp, d / "out.ome.zarr", *args)
    ok("run", inp, d / "out.precomputed", *args, "--output-format", "precomputed")
    return inp, args, d


def test_cloudvolume_reads_what_the_ome_zarr_run_wrote(restored, cli):
    inp, _, d = restored
    out = d / "out.precomputed"
    for mip in range(3):
        vol = cloudvolume(out, mip)
        ome = zarr.open_array(str(d / "out.ome.zarr" / str(mip)), mode="r")[...]
        assert np.array_equal(read_zyx(vol), ome), mip
    top = cloudvolume(out)
    assert list(top.resolution) == [18.4 / 4, 18.4 / 4, 50.0]  # 4x finer than the input in y, x
    assert list(top.voxel_offset) == [0, 0, 0] and tuple(top.shape) == (1024, 1024, 8, 1)
    assert list(cloudvolume(out, 2).resolution) == [18.4, 18.4, 50.0]  # the input's grid
    info = json.loads((out / "info").read_text())
    assert [s["chunk_sizes"] for s in info["scales"]] == [[[256, 256, 2]]] * 3
    prov = read_provenance(out)
    assert prov["status"] == "complete" and prov["settings"]["output_format"] == "precomputed"
    assert cloudvolume(out).provenance["pssr_volume"]["fingerprint"] == prov["fingerprint"]
    assert not (out / ".pssr-volume").exists()  # a finished output keeps no state
    code, text, err = cli("info", out)
    assert code == 0 and "format    neuroglancer precomputed" in text, err
    assert "levels    3" in text and "status    complete" in text
    code, text, err = cli("verify", out)
    assert code == 0 and "84 chunk(s) in 36 file(s), 3 level(s): no damage" in text, err


def test_killed_run_resumes_to_the_same_bytes_and_its_lease_holds(restored, tmp_path, cli):
    """The run as its own process, frozen once some blocks are journalled: a second run is
    refused by the lease, then the first is killed (SIGKILL) and --resume finishes it."""
    inp, args, d = restored
    out = tmp_path / "out.precomputed"
    first = start("run", inp, out, *args, "--output-format", "precomputed", cwd=tmp_path)
    proc = first[0]
    try:
        wait_for(lambda: blocks_done(out) >= 2 or proc.poll() is not None, "2 blocks")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGSTOP)
        code, _, err = cli("run", inp, out, *args, "--output-format", "precomputed", "--resume")
        assert code == 2 and f"is being written by pssr-volume run (pid {proc.pid}" in err
        assert len(err.strip().splitlines()) == 1
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        finish(first, 60)
    kept = blocks_done(out)
    assert 2 <= kept < 16 and read_provenance(out)["status"] == "running"
    code, _, err = cli("run", inp, out, *args, "--output-format", "precomputed", "--resume")
    assert code == 0 and f"{16 - kept} block(s) restored, {kept} already done" in err, err
    assert levels(out) == levels(d / "out.precomputed")  # every shard byte-identical
    assert (out / "info").read_bytes() == (d / "out.precomputed" / "info").read_bytes()


def test_verify_finds_damage_and_resume_verify_rewrites_it(restored, tmp_path, cli):
    inp, args, d = restored
    out = tmp_path / "out.precomputed"
    shutil.copytree(d / "out.precomputed", out)
    shard = sorted((out / "0").iterdir())[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside a chunk's gzip stream: its CRC-32 fails
    shard.write_bytes(bytes(data))
    lost = sorted((out / "1").iterdir())[3]
    lost.unlink()
    code, text, _ = cli("verify", out)
    lines = text.strip().splitlines()
    assert code == 1 and any(x.startswith("damaged: level 0 chunk") and f"0/{shard.name}" in x
                             for x in lines), text
    assert "missing: level 1 shard" in text and f"(1/{lost.name}," in text
    code, _, err = cli("run", inp, out, *args, "--output-format", "precomputed", "--resume",
                       "--verify")
    assert code == 0 and "4 task(s) will be redone" in err, err
    assert levels(out) == levels(d / "out.precomputed")
    # resuming with other settings (here: the other format) is refused in one line
    code, _, err = cli("run", inp, out, *args, "--resume")
    assert code == 2 and "output_format: 'precomputed' -> None" in err, err


def test_convert_places_the_input_and_a_restoration_subdivides_it(tmp_path, models, cli):
    """convert of a Zarr input with an offset (nm) and an all-zero corner: CloudVolume reads
    its voxels unchanged at its offset in voxels; every chunk is stored, the all-zero one
    too (tensorstore's driver leaves it out); a restoration of it lies on a 4x finer grid
    whose corners meet the input's (its offset 4x the input's), its level 2 on the input's."""
    vol = em_like((8, 256, 256), seed=25)
    vol[:, :128, :128] = 0
    inp = tmp_path / "in.zarr"
    array = zarr.open_array(str(inp), mode="w", shape=vol.shape, chunks=(4, 128, 128),
                            dtype="uint8")
    array[...] = vol
    array.attrs.update(resolution=[50, 18.4, 18.4], offset=[100, 18.4 * 12, 18.4 * 20])
    out = tmp_path / "in.precomputed"
    code, _, err = cli("convert", inp, out, "--output-format", "precomputed", "--chunk-shape",
                       "8,128,128", "--block-shape", "8,256,256", "--levels", "2", *FAST)
    assert code == 0, err
    converted = cloudvolume(out)
    assert list(converted.voxel_offset) == [20, 12, 2]
    assert np.array_equal(read_zyx(converted), vol)
    info = json.loads((out / "info").read_text())
    kv = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "base": {
        "driver": "file", "path": f"{out}/0/"}, "metadata": info["scales"][0]["sharding"]}).result()
    assert sorted(struct.unpack(">Q", k)[0] for k in kv.list().result()) == [0, 1, 2, 3]
    code, text, _ = cli("verify", out)
    assert code == 0 and "no damage" in text
    run = tmp_path / "run.precomputed"
    code, _, err = cli("run", inp, run, "--model", models["pointwise"], "--output-format",
                       "precomputed", "--levels", "3", *FAST)
    assert code == 0, err
    assert list(cloudvolume(run).voxel_offset) == [80, 48, 2]
    assert list(cloudvolume(run, 2).voxel_offset) == [20, 12, 2]
    assert list(cloudvolume(run, 2).resolution) == list(converted.resolution)


def test_refusals_are_one_line(restored, tmp_path, cli):
    inp, args, d = restored
    cases = [
        (["convert", inp, tmp_path / "a", "--output-format", "precomputed", "--chunk-shape",
          "8,64,128", "--block-shape", "8,128,128"],
         "--chunk-shape 8,64,128 cannot make a precomputed shard of each written region "
         "8,128,128"),
        (["run", inp, tmp_path / "b", "--output-format", "precomputed", "--ngff-version", "0.4"],
         "--ngff-version is an OME-Zarr setting"),
        (["run", inp, tmp_path / "c", "--output-format", "precomputed", "--consistency-map"],
         "--consistency-map writes a Zarr array beside the levels"),
        (["convert", tmp_path / "f64.tif", tmp_path / "d", "--output-format", "precomputed"],
         "neuroglancer precomputed has no float64 data type"),
        (["run", inp, d / "out.precomputed", *args, "--output-format", "precomputed"],
         "output exists"),
    ]
    write_tiff(tmp_path / "f64.tif", np.zeros((2, 16, 16)), voxel=None)
    for argv, message in cases:
        code, _, err = cli(*argv, *FAST)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (argv, err)
        assert not Path(argv[2]).exists() or argv[2] == d / "out.precomputed"


def test_layout_rule_matches_tensorstore(tmp_path):
    """Each shard holds exactly the chunks of one written region: the shards tensorstore
    writes for a region-wise write are the ones the layout names."""
    shape, shard = (8, 1000, 600), (2, 512, 512)  # z, y, x; not a whole number of shards
    assert choose_chunk(shape, shard, (2, 256, 256)) == ((2, 256, 256), 2)  # 1 x 2 x 2
    chunk, k = choose_chunk(shape, shard, (1, 256, 256))
    assert chunk == (1, 256, 256) and k == 3  # 2 x 2 x 2 chunks a shard
    bits = (2, 2, 3)  # x, y, z: a grid of 3 x 4 x 8 chunks
    assert prefix_counts(bits, 3) == (1, 1, 1) and prefix_counts(bits, 5) == (2, 2, 1)
    assert [morton_code(i, bits) for i in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0)]] == [
        1, 2, 4, 8]
    assert morton_code((0, 0, 4), bits) == 64  # x and y have run out: z's bits only

    level = Level("0", shape, (50.0, 4.6, 4.6), (1, 1, 1))
    notes: list[str] = []
    scale = plan_scales((level,), (shard,), (1, 256, 256), (50.0, 4.6, 4.6), False, "uint8",
                        notes)[0]
    assert notes == []
    # a region of 3 sections splits only into 3-section chunks, so y, x into 2 at most: a note
    deep = Level("0", (60, 4096, 4096), (50.0, 4.6, 4.6), (1, 1, 1))
    thick = plan_scales((deep,), ((3, 1024, 1024),), (1, 256, 256), (50.0, 4.6, 4.6), False,
                        "uint8", notes)[0]
    assert thick.chunk == (3, 512, 512) and "precomputed chunks of 3,512,512" in notes[0]
    info = {"@type": "neuroglancer_multiscale_volume", "type": "image", "data_type": "uint8",
            "num_channels": 1, "scales": [scale.info()]}
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "info").write_text(json.dumps(info))
    store = ts.open({"driver": "neuroglancer_precomputed",
                     "kvstore": {"driver": "file", "path": f"{tmp_path}/v/"}}).result()
    view = store[ts.d["channel"][0]].T
    for z, y, x in [(0, 0, 0), (2, 512, 0), (6, 512, 512)]:  # one region at a time
        region = view[z:z + 2, y:min(y + 512, 1000), x:min(x + 512, 600)]
        region.write(np.full(region.shape, 7, np.uint8)).result()
        files = sorted(p.name for p in (tmp_path / "v" / "0").iterdir())
        expected = scale.shard_file((z // 2, y // 512, x // 512))
        assert expected in files
        assert len(files) == [(0, 0, 0), (2, 512, 0), (6, 512, 512)].index((z, y, x)) + 1


def test_s3_output_equals_the_local_one_and_verifies(tmp_path, models, s3, cli):  # noqa: F811
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 64, 64), seed=26))
    args = ["--model", models["pointwise"], "--block-shape", "1,128,128", "--levels", "2",
            "--output-format", "precomputed", *FAST]
    url = f"{s3}/run.precomputed"
    for where in (url, tmp_path / "run.precomputed"):
        code, _, err = cli("run", inp, where, *args)
        assert code == 0, err
    remote = level_bytes(url)
    assert remote == level_bytes(tmp_path / "run.precomputed") and len(remote) == 10
    assert json.loads(keys(url)["info"]) == json.loads((tmp_path / "run.precomputed" /
                                                        "info").read_text())
    assert not [k for k in keys(url) if k.startswith(".pssr-volume")]
    code, text, err = cli("verify", url)
    assert code == 0 and "no damage" in text, err
    code, text, _ = cli("info", url)
    assert "status    complete" in text and "format    neuroglancer precomputed" in text
    code, _, err = cli("run", inp, url, *args, "--resume")
    assert code == 0 and "is complete: nothing to resume" in err


def test_gs_output_equals_the_local_one(tmp_path, gs, cli):  # noqa: F811
    """convert to gs://, as its own process: tensorstore reads the GCS emulator's address
    once per process, and another test module's emulator may have come first in this one."""
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 64, 64), seed=27))
    args = ["--block-shape", "1,32,32", "--chunk-shape", "1,32,32", "--levels", "2",
            "--output-format", "precomputed", *FAST]
    url = f"{gs}/in.precomputed"
    code, err, _ = finish(start("convert", inp, url, *args, cwd=tmp_path), 120)
    assert code == 0, err
    code, _, err = cli("convert", inp, tmp_path / "in.precomputed", *args)
    assert code == 0, err
    remote = level_bytes(url)
    assert remote == level_bytes(tmp_path / "in.precomputed") and len(remote) == 10
    assert json.loads(keys(url)["provenance"])["pssr_volume"]["status"] == "complete"
    assert not [k for k in keys(url) if k.startswith(".pssr-volume")]
