"""Checksums on every chunk, ``pssr-volume verify``, and ``run --resume --verify``.

Damage made after a run (a shard zeroed, a file deleted, one byte flipped) is named chunk
by chunk (or shard by shard, when a whole shard is gone) with exit status 1; ``--resume
--verify`` rewrites exactly the tasks that wrote it, and the pyramid tasks above, and the
levels are byte-identical to a clean run again.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import zarr
from conftest import em_like, levels, write_tiff

from pssr_volume.config import ConvertConfig
from pssr_volume.convert import convert
from pssr_volume.io.journal import Journal
from pssr_volume.io.ome_zarr import read_provenance, update_provenance
from pssr_volume.pyramid import plan_levels, plan_stages
from pssr_volume.tasks import block_key, pyramid_key
from pssr_volume.verify import TaskMap, verify_output


@pytest.fixture
def restored(tmp_path, models, cli):
    """A small restoration (8 x 256 x 256, levels 0-2: level 0 in 1 x 128 x 128 shards of
    1 x 64 x 64 chunks) and a clean reference of it."""
    data = em_like((8, 64, 64), seed=51)
    data[:, :32, :32] = 0  # all-zero chunks: stored too (every chunk exists)
    inp = write_tiff(tmp_path / "in.tif", data)
    args = ["--model", models["pointwise"], "--cluster", "sync", "--no-progress",
            "--block-shape", "1,128,128", "--chunk-shape", "1,64,64", "--levels", "3"]
    for name in ("out", "ref"):
        code, _, err = cli("run", inp, tmp_path / f"{name}.ome.zarr", *args)
        assert code == 0, err
    return inp, args, tmp_path / "out.ome.zarr", tmp_path / "ref.ome.zarr"


def _zero(path):
    path.write_bytes(bytes(path.stat().st_size))


def test_chunks_carry_crc32c_and_every_chunk_is_stored(restored):
    _, _, out, _ = restored
    meta = json.loads((out / "0" / "zarr.json").read_text())
    sharding = meta["codecs"][0]["configuration"]
    assert [c["name"] for c in sharding["codecs"]] == ["bytes", "zstd", "crc32c"]
    assert [c["name"] for c in sharding["index_codecs"]] == ["bytes", "crc32c"]
    assert read_provenance(out)["storage"] == {"every_chunk_stored": True, "checksum": "crc32c"}
    for k, shape in enumerate([(8, 2, 2), (8, 2, 2), (8, 1, 1)]):  # shards per level
        files = [p for p in (out / str(k) / "c").rglob("*") if p.is_file()]
        assert len(files) == np.prod(shape), k  # the all-zero ones included
    np.testing.assert_array_equal(zarr.open_array(str(out / "0"), mode="r")[:, :128, :128], 0)


def test_a_clean_output_verifies(restored, cli):
    _, _, out, _ = restored
    code, stdout, err = cli("verify", out)
    assert code == 0, err
    assert stdout.strip().splitlines() == [
        f"verified {out}: {128 + 32 + 8} chunk(s) in {32 + 32 + 8} file(s), 3 level(s): "
        "no damage"]


def test_verify_names_damage_and_resume_verify_rewrites_it(restored, cli):
    inp, args, out, ref = restored
    _zero(out / "0" / "c" / "3" / "1" / "0")  # a level-0 shard: its index fails its crc32c
    (out / "1" / "c" / "5" / "0" / "1").unlink()  # a level-1 file (one chunk of 64 x 64)
    shard = out / "0" / "c" / "6" / "0" / "1"  # one byte of one chunk inside a shard
    raw = bytearray(shard.read_bytes())
    raw[10] ^= 0xFF
    shard.write_bytes(bytes(raw))

    code, stdout, err = cli("verify", out)
    lines = stdout.strip().splitlines()
    assert code == 1
    assert re.fullmatch(r"damaged: level 0 shard 3,1,0 \(0/c/3/1/0, voxels 3:4,128:256,0:128\)"
                        r": DATA_LOSS: .*shard index.*Digest mismatch.*", lines[0]), lines[0]
    # zstd, reading the bytes before their checksum is checked, may report it first
    assert re.fullmatch(r"damaged: level 0 chunk 6,0,2 \(0/c/6/0/1, voxels 6:7,0:64,128:192\)"
                        r": [A-Z_]+: .*(Digest mismatch|corrupt).*", lines[1]), lines[1]
    assert lines[2] == "missing: level 1 shard 5,0,1 (1/c/5/0/1, voxels 5:6,0:64,64:128)"
    assert len(lines) == 3
    assert err.strip() == (f"Error: {out}: 5 damaged and 1 missing chunk(s) of 168 chunk(s) in "
                           "72 file(s), 3 level(s); rerun the command that wrote it with "
                           "--resume --verify to rewrite them")

    code, _, err = cli("run", inp, out, *args, "--resume", "--verify")
    assert code == 0, err
    # blocks (3,1,0), (6,0,1) (whose shard holds chunk 6,0,2) and (5,0,1) (it writes level
    # 1's chunk 5,0,1), and the level-2 tasks of sections 3, 5 and 6, which read level 1
    assert "verify: 6 damaged or missing chunk(s) in 3 file(s); 6 task(s) will be redone" in err
    assert ("done: 3 block(s) restored, 29 already done; pyramid level 1 written in the block "
            "tasks, level 2 by 3 later pyramid task(s)") in err
    assert read_provenance(out)["status"] == "complete"
    assert not (out / ".pssr-volume").exists()
    assert levels(out) == levels(ref)
    assert cli("verify", out)[0] == 0


def test_resume_verify_of_a_clean_complete_output_does_nothing(restored, cli):
    inp, args, out, ref = restored
    code, _, err = cli("run", inp, out, *args, "--resume", "--verify")
    assert code == 0, err
    assert "no damage" in err and "is complete: nothing to resume" in err
    assert levels(out) == levels(ref) and not (out / ".pssr-volume").exists()


def test_verify_needs_resume_and_an_output(restored, cli, tmp_path):
    inp, args, out, _ = restored
    code, _, err = cli("run", inp, tmp_path / "new.ome.zarr", *args, "--verify")
    assert code == 2 and err.strip() == ("Error: --verify checks an output before finishing "
                                         "it: use it with --resume")
    assert not (tmp_path / "new.ome.zarr").exists()
    code, _, err = cli("verify", tmp_path / "missing.ome.zarr")
    assert code == 2 and err.strip() == f"Error: not found: {tmp_path / 'missing.ome.zarr'}"
    code, _, err = cli("verify", inp)
    assert code == 2 and "is not an OME-Zarr image" in err


def test_an_unfinished_output_expects_only_journaled_chunks(restored):
    _, _, out, _ = restored
    update_provenance(out, status="running")  # as if killed after blocks of z 0 and 1
    Journal(out).replace({block_key((z, y, x)) for z in (0, 1) for y in (0, 1) for x in (0, 1)})
    (out / "0" / "c" / "5" / "0" / "0").unlink()  # not journaled: not written yet, fine
    assert verify_output(out).damage == []
    (out / "0" / "c" / "1" / "1" / "1").unlink()  # journaled: its data must be there
    found = verify_output(out).damage
    assert [(d.kind, d.level, d.unit, d.index) for d in found] == [
        ("missing", "0", "shard", (1, 1, 1))]


def test_ngff04_chunks_are_gzip_and_damage_is_found(tmp_path, models, cli):
    """NGFF 0.4 chunks are gzip: its CRC-32 catches a single flipped bit, which a zstd chunk
    without a checksum would decode silently (benchmarks/bench_chunk_codecs.py)."""
    inp = write_tiff(tmp_path / "in.tif", em_like((4, 32, 32), seed=52))
    args = ["--model", models["pointwise"], "--cluster", "sync", "--no-progress",
            "--block-shape", "1,128,128", "--chunk-shape", "1,64,64", "--levels", "2",
            "--ngff-version", "0.4"]
    out, ref = tmp_path / "out.ome.zarr", tmp_path / "ref.ome.zarr"
    for path in (out, ref):
        assert cli("run", inp, path, *args)[0] == 0
    meta = json.loads((out / "0" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "gzip" and meta["filters"] is None
    assert read_provenance(out)["settings"]["compression"]["codec"] == "gzip"
    _zero(out / "0" / "2" / "1" / "0")
    flipped = out / "0" / "1" / "0" / "1"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x10  # one bit inside the compressed stream
    flipped.write_bytes(bytes(data))
    (out / "1" / "3" / "0" / "0").unlink()
    code, stdout, _ = cli("verify", out)
    assert code == 1
    lines = stdout.splitlines()
    assert [ln.split(" (")[0] for ln in lines] == [
        "damaged: level 0 chunk 1,0,1", "damaged: level 0 chunk 2,1,0",
        "missing: level 1 chunk 3,0,0"], stdout
    assert re.fullmatch(r"damaged: level 0 chunk 2,1,0 \(0/2/1/0, voxels 2:3,64:128,0:64\): "
                        r"[A-Z_]+: .*0/2/1/0.*", lines[1]), lines[1]
    assert lines[2] == "missing: level 1 chunk 3,0,0 (1/3/0/0, voxels 3:4,0:64,0:64)"
    assert cli("run", inp, out, *args, "--resume", "--verify")[0] == 0
    assert levels(out) == levels(ref)


def test_ngff04_compression_level_is_gzips(tmp_path, cli):
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 16, 16), seed=54))
    code, _, err = cli("convert", inp, tmp_path / "c.ome.zarr", "--ngff-version", "0.4",
                       "--compression-level", "12")
    assert code == 2 and err.strip().splitlines() == [
        "Error: --compression-level 12: NGFF 0.4 chunks are gzip, whose levels are 0-9"], err
    assert not (tmp_path / "c.ome.zarr").exists()


def test_convert_resume_verify(tmp_path):
    data = em_like((4, 96, 80), seed=53)
    inp = write_tiff(tmp_path / "in.tif", data)
    cfg = ConvertConfig(input=inp, output=tmp_path / "c.ome.zarr", cluster="sync",
                        chunk_shape=(1, 32, 32), block_shape=(1, 64, 64), levels=3,
                        progress=False)
    convert(cfg)
    ref = levels(cfg.output)
    (cfg.output / "0" / "c" / "2" / "1" / "0").unlink()
    _zero(cfg.output / "2" / "c" / "0" / "0" / "0")
    convert(cfg.model_copy(update={"resume": True}), verify=True)
    assert levels(cfg.output) == ref
    np.testing.assert_array_equal(zarr.open_array(str(cfg.output / "0"), mode="r")[:], data)


def test_redo_reaches_the_pyramid_stages_above():
    """Damage at level 0 redoes its block and every later-stage task reading what the
    block wrote, and nothing else."""
    lv = plan_levels((2, 512, 512), (50.0, 4.0, 4.0), 4)
    stages = plan_stages(lv, (1, 128, 128), (1, 64, 64))
    assert [(s.first, s.last) for s in stages] == [(0, 1), (2, 3)]
    tasks = TaskMap(lv, stages)
    redo = tasks.redo([(0, ((1, 2), (256, 320), (0, 64)))])
    assert redo == {block_key((1, 2, 0)), pyramid_key(2, ((1, 2), (0, 128), (0, 128)))}
    assert len(tasks.all_keys()) == 2 * 4 * 4 + 2
    assert tasks.owner(3, ((0, 1), (0, 32), (32, 64))) == pyramid_key(
        2, ((0, 1), (0, 128), (0, 128)))
