"""The layouts of huge volumes (issue 21 item 2), on small ones: CPU blocks thicken where a
volume would need more than ``task_size.MAX_BLOCKS`` blocks, and a stage of more than
``pyramid.MANY_TASKS`` tasks stops before its shards fall under ``pyramid.MIN_SHARD_YX``, so a
later stage of fewer tasks writes those levels with shards spanning several blocks. Those
thresholds only trigger at teravoxel scale, so the tests lower them (and the default block
side, ``plan.DEFAULT_BLOCK_YX``): in this process with monkeypatch, in a killed run's process
by setting them before the command line starts. Everything else is the real default path."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import zarr
from conftest import blocks_done, em_like, levels, wait_for, write_tiff

from pssr_volume import plan as plan_module
from pssr_volume import pyramid, task_size
from pssr_volume.config import RunConfig
from pssr_volume.io.ome_zarr import read_provenance
from pssr_volume.plan import make_plan
from pssr_volume.pyramid import child_region, cumulative, plan_levels, plan_stages, shard_shapes
from pssr_volume.pyramid import task_regions as regions_of

SMALL = {"pssr_volume.pyramid": {"MANY_TASKS": 4, "MIN_SHARD_YX": 64},
         "pssr_volume.task_size": {"MAX_BLOCKS": 30},
         "pssr_volume.plan": {"DEFAULT_BLOCK_YX": 128}}
"""The thresholds of a teravoxel volume, scaled to a 16 x 64 x 128 input (16 blocks)."""


def _lower(monkeypatch: pytest.MonkeyPatch, values: dict[str, dict[str, int]]) -> None:
    modules = {"pssr_volume.pyramid": pyramid, "pssr_volume.task_size": task_size,
               "pssr_volume.plan": plan_module}
    for name, attrs in values.items():
        for attr, value in attrs.items():
            monkeypatch.setattr(modules[name], attr, value)


def _writes(lv, st, region):
    """The regions one task of stage ``st`` writes, by level: ``region`` of the stage's first
    level, then its pooled images, as the task computes them (tasks.start_levels)."""
    out = {st.first: region}
    for k in range(st.first + 1, st.last + 1):
        region = child_region(region, lv[k].factors, lv[k].shape)
        out[k] = region
    return out


@pytest.mark.parametrize("seed", range(60))
def test_one_writer_per_shard_at_every_level_of_the_capped_layouts(seed, monkeypatch):
    """A seeded sweep of volumes, chunks, default (thickened) blocks and caps: at every level,
    every shard is written by exactly one task, whole, and a later stage reads only levels
    the stages before it have finished."""
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(pyramid, "MANY_TASKS", int(rng.integers(1, 6)))
    monkeypatch.setattr(pyramid, "MIN_SHARD_YX", int(rng.choice([8, 16, 32])))
    monkeypatch.setattr(task_size, "MAX_BLOCKS", int(rng.integers(1, 40)))
    chunk = (int(rng.choice([1, 2, 4])), int(rng.choice([4, 8])), int(rng.choice([4, 8])))
    shape = tuple(int(n) for n in rng.integers(1, 200, 3))
    yx = chunk[1] * chunk[2] * int(rng.integers(1, 5))  # a multiple of both chunk sides
    z = task_size.cpu_block_sections((shape[0], shape[1], shape[2]), 1, yx)
    z = math.ceil(z / chunk[0]) * chunk[0]
    block = (z, yx, yx)
    voxel = (float(rng.choice([1.0, 4.0, 10.0])), 1.0, 1.0)
    lv = plan_levels(shape, voxel, None, min_size=4)
    stages = plan_stages(lv, block, chunk)
    shards = shard_shapes(lv, stages, chunk)
    assert [st.first for st in stages] == [0, *(st.last + 1 for st in stages[:-1])]
    assert stages[-1].last == len(lv) - 1
    for s, st in enumerate(stages):
        assert st.source == (None if s == 0 else st.first - 1)  # the level just finished
        owners: dict[tuple[int, tuple[int, ...]], int] = {}
        for i, region in enumerate(regions_of(lv[st.first].shape, st.task)):
            for k, box in _writes(lv, st, region).items():
                assert all(a % c == 0 for (a, _), c in zip(box, chunk))  # whole chunks
                starts = [range(a, b, sh) for (a, b), sh in zip(box, shards[k])]
                for origin in itertools.product(*starts):
                    end = [min(o + sh, n) for o, sh, n in zip(origin, shards[k], lv[k].shape)]
                    assert all(e <= b for e, (_, b) in zip(end, box))  # the whole shard
                    assert (k, origin) not in owners  # a second writer
                    owners[(k, origin)] = i
        for k in range(st.first, st.last + 1):  # every shard of the stage's levels written
            n = math.prod(math.ceil(a / sh) for a, sh in zip(lv[k].shape, shards[k]))
            assert sum(1 for kk, _ in owners if kk == k) == n


def test_the_sweep_reaches_the_capped_layouts(monkeypatch):
    """The cap takes effect (a stage stops earlier than its chunks allow) in the sweep's kind
    of geometry, so the property above is about the new layouts, not only the old."""
    monkeypatch.setattr(pyramid, "MANY_TASKS", 2)
    monkeypatch.setattr(pyramid, "MIN_SHARD_YX", 16)
    lv = plan_levels((20, 150, 170), (10.0, 1.0, 1.0), None, min_size=4)
    block, chunk = (4, 64, 64), (2, 4, 4)
    capped, old = plan_stages(lv, block, chunk), plan_stages(lv, block, chunk, cap=False)
    assert capped[0].last < old[0].last and len(capped) > len(old)


def _patched_cli(values: dict[str, dict[str, int]]) -> list[str]:
    """``pssr-volume`` as a process whose thresholds are ``values``."""
    code = ("import importlib, json, sys\n"
            "for mod, attrs in json.loads(sys.argv[1]).items():\n"
            "    m = importlib.import_module(mod)\n"
            "    for k, v in attrs.items():\n"
            "        setattr(m, k, v)\n"
            "from pssr_volume.cli import main\n"
            "sys.exit(main(sys.argv[2:]))\n")
    return [sys.executable, "-c", code, json.dumps(values)]


def test_killed_and_resumed_with_the_new_defaults_is_byte_identical(tmp_path, models, scheduler,
                                                                     cli, monkeypatch):
    """A run of the default layout (thickened blocks, a capped first stage, a later stage whose
    shards span several blocks: here each of level 2's two shards covers 8 blocks) SIGKILLed
    with its workers part way through the blocks, then finished with --resume: the same bytes
    as a run never interrupted."""
    inp = write_tiff(tmp_path / "in.tif", em_like((16, 64, 128), seed=21))
    args = ["--model", models["fast"], "--chunk-shape", "8,16,16", "--voxel-size", "30,8,8",
            "--levels", "3", "--no-progress"]
    _lower(monkeypatch, SMALL)
    job = make_plan(RunConfig(input=inp, output=tmp_path / "x", model=models["fast"],
                              chunk_shape=(8, 16, 16), voxel_size=(30.0, 8.0, 8.0), levels=3,
                              cluster="sync")).job
    assert job.grid.block == (8, 128, 128)  # thickened: 2 sections would be 64 blocks
    assert [(st.first, st.last) for st in job.stages] == [(0, 1), (2, 2)]  # capped at level 1
    assert cumulative(job.levels, 0, 2)[1:] == (4, 4)  # a level-2 task: 4 x 4 blocks' extent
    total = len(job.grid)

    out = tmp_path / "out.ome.zarr"
    proc = subprocess.Popen([*_patched_cli(SMALL), "run", str(inp), str(out), *map(str, args),
                             "--cluster", "local", "--workers", "2"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: blocks_done(out) >= total // 4 or proc.poll() is not None, "a quarter")
        os.killpg(proc.pid, signal.SIGKILL)  # the client, its scheduler and workers
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    kept = blocks_done(out)
    assert total // 4 <= kept < total and read_provenance(out)["status"] == "running"

    code, _, err = cli("run", inp, out, *args, "--cluster", scheduler, "--resume")
    assert code == 0, err
    assert f"block(s) restored, {kept} already done" in err
    assert "pyramid level 1 written in the block tasks, level 2 by" in err
    code, _, err = cli("run", inp, tmp_path / "ref.ome.zarr", *args, "--cluster", scheduler)
    assert code == 0, err
    assert levels(out) == levels(tmp_path / "ref.ome.zarr")
    shards = [zarr.open_array(str(out / k)).shards for k in ("0", "1", "2")]
    assert shards == [(8, 128, 128), (8, 64, 64), (8, 128, 128)]
