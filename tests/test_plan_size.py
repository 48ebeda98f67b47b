"""A plan's size is counted, never enumerated (issues 21 and 23): absurd shapes are refused at
once with nothing written, and the driver enumerates blocks lazily."""

from __future__ import annotations

import os

import pytest
import zarr
from conftest import em_like, write_tiff

from pssr_volume.config import RunConfig
from pssr_volume.engine import _blocks_done, task_total
from pssr_volume.io.journal import Journal
from pssr_volume.plan import make_plan
from pssr_volume.pyramid import task_count, task_regions
from pssr_volume.tasks import block_key


@pytest.mark.parametrize(("shape", "task"), [((7, 33, 65), (2, 8, 16)), ((1, 1, 1), (4, 4, 4)),
                                             ((64, 64, 64), (64, 64, 64))])
def test_task_count_is_the_number_of_task_regions(shape, task):
    assert task_count(shape, task) == len(task_regions(shape, task))


@pytest.mark.parametrize("command", ["run", "convert"])
@pytest.mark.parametrize("dry", [True, False])
def test_an_absurd_shape_is_refused_at_once_and_nothing_is_written(tmp_path, cli, command, dry,
                                                                   models):
    big = tmp_path / "huge.zarr"  # 10^6 cubed, empty: only its metadata exists
    zarr.create_array(str(big), shape=(10**6,) * 3, chunks=(64, 1024, 1024), dtype="uint8",
                      fill_value=0)
    before = sorted(os.listdir(tmp_path))
    out = tmp_path / "o.ome.zarr"
    extra = ["--model", models["pointwise"]] if command == "run" else []
    code, _, err = cli(command, big, out, "--voxel-size", "30,8,8", "--cluster", "sync",
                       *extra, *(["--dry-run"] if dry else []))
    assert code == 2 and err.count("\n") == 1, err
    assert "tasks for an output of" in err and "at most 10,000,000" in err
    assert sorted(os.listdir(tmp_path)) == before  # no output, no lease


def test_the_driver_counts_finished_blocks_from_the_journal(tmp_path, models):
    inp = write_tiff(tmp_path / "in.tif", em_like((5, 40, 52)))
    job = make_plan(RunConfig(input=inp, output=tmp_path / "o", model=models["pointwise"],
                              cluster="sync", block_shape=(2, 64, 64))).job
    assert task_total(job) >= len(job.grid) == 3 * 3 * 4
    journal = Journal(tmp_path / "o")
    keys = {block_key(i) for i in list(job.grid.indices())[::2]}
    for k in keys:
        journal.mark(k)
    journal.mark("block 9.9.9")  # not a block of this grid
    journal.mark("level 1 0.0.0")
    assert _blocks_done(job, journal.done()) == len(keys)


def test_tiny_chunks_warn_and_a_thousand_local_workers_are_refused(tmp_path, cli):
    inp = write_tiff(tmp_path / "in.tif", em_like((4, 64, 64)))
    out = tmp_path / "o.ome.zarr"
    code, _, err = cli("convert", inp, out, "--chunk-shape", "1,1,1", "--ngff-version", "0.4",
                       "--dry-run", "--cluster", "sync")
    assert code == 0 and "warning: chunks of 1 bytes (1x1x1): 16,384 files at level 0" in err
    code, _, err = cli("convert", inp, out, "--dry-run", "--cluster", "sync")
    assert code == 0 and "warning: chunks" not in err  # the default chunks
    code, _, err = cli("convert", inp, out, "--workers", "1000", "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "--workers 1000" in err
    assert "worker processes per core" in err and not out.exists()
