"""``--resume`` of an output whose journal holds 500,000 finished tasks (issue 21 item 4): the
journal is written directly (benchmarks/bench_resume.py, which also times the resume as a
process on a local cluster); the resume finds the two blocks left and runs only them."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
from conftest import em_like, write_tiff

from benchmarks.bench_resume import build, run_args
from pssr_volume.config import RunConfig
from pssr_volume.engine import _pending, _todo
from pssr_volume.io.journal import Journal
from pssr_volume.plan import make_plan
from pssr_volume.tasks import block_key


def test_a_resume_of_500000_finished_tasks_runs_only_the_blocks_left(tmp_path, cli):
    left = {(0, 0, 0), (250, 17, 3)}
    recorded = build(tmp_path, left)
    assert recorded == 512_000 - 2 + 160_000  # blocks and later pyramid tasks
    code, _, err = cli("run", *run_args(tmp_path), "--resume", "--cluster", "sync")
    assert code == 0, err
    assert "done: 2 block(s) restored, 511998 already done" in err
    assert "by 0 later pyramid task(s)" in err
    out = tmp_path / "out.ome.zarr"
    assert not Journal(out).dir.exists()  # complete: the journal is gone
    shards = sorted(p.relative_to(out / "0" / "c") for p in (out / "0" / "c").rglob("*")
                    if p.is_file())
    assert shards == [Path("0/0/0"), Path("250/17/3")]  # one shard per block: the two left


def test_the_blocks_left_are_made_lazily_in_raster_order(tmp_path, models):
    """_todo gives what the old enumeration (every index, its key looked up) gave, on odd
    grids and journals, from a flag a block."""
    inp = write_tiff(tmp_path / "in.tif", em_like((5, 40, 52)))
    rng = random.Random(0)
    for block in ((2, 64, 64), (1, 32, 48), (3, 96, 32)):
        job = make_plan(RunConfig(input=inp, output=tmp_path / "o", model=models["pointwise"],
                                  cluster="sync", block_shape=block)).job
        counts = job.grid.counts
        every = list(itertools.product(*map(range, counts)))
        for share in (0.0, 0.3, 0.9, 1.0):
            done = {block_key(i) for i in every if rng.random() < share}
            done |= {"block 99.0.0", "level 1 0.0.0"}  # not blocks of this grid
            pending = _pending(job, done)
            assert pending.dtype == np.bool_ and pending.shape == (len(job.grid),)
            assert list(_todo(job, pending)) == [i for i in every if block_key(i) not in done]
        assert list(_todo(job, _pending(job, set()))) == every
