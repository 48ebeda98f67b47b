"""The compute slot (pssr_volume/compute_slot.py): a worker process of this tool runs two task
threads; one task computes at a time while another waits for its writes to reach the disk."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zarr
from conftest import em_like, levels, write_tiff

from pssr_volume.cluster.executors import open_executor
from pssr_volume.cluster.spec import check_cluster
from pssr_volume.compute_slot import TASK_THREADS, ComputeSlot, peaks
from pssr_volume.config import RunConfig
from pssr_volume.io.output_levels import start_write
from pssr_volume.run import run
from pssr_volume.tasks import settled_on_error


def test_the_slot_admits_one_computing_task_and_counts_the_others():
    slot = ComputeSlot()
    inside, release, entered = threading.Event(), threading.Event(), []

    def first() -> None:
        with slot.task(), slot.compute():
            inside.set()
            release.wait(10)

    def second() -> None:
        with slot.task():
            inside.wait(10)
            with slot.compute():
                entered.append(release.is_set())

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    inside.wait(10)
    release.set()
    for t in threads:
        t.join(10)
    assert entered == [True]  # the second computed only once the first had let go
    assert slot.peaks(reset=True) == (2, 1) and slot.peaks() == (0, 0)


def test_local_workers_compute_one_block_at_a_time_and_commit_meanwhile(tmp_path, models):
    """A real --cluster local worker: two tasks at once in it (one committing), never two
    computing; the output's bytes equal those of a run of one task at a time (--cluster sync)."""
    inp = write_tiff(tmp_path / "in.tif", em_like((6, 64, 64)))
    common = dict(input=inp, model=models["pointwise"], block_shape=(2, 64, 64),
                  progress=False)
    spec = check_cluster(RunConfig(**common, output=tmp_path / "o", cluster="local",
                                   workers=1, device="cpu"))
    with open_executor(spec) as ex:
        threads = ex.client.nthreads()
        ex.client.run(peaks, True)
        run(RunConfig(**common, output=tmp_path / "o.ome.zarr",
                      cluster=ex.client.scheduler.address))
        seen = ex.client.run(peaks)
    assert list(threads.values()) == [TASK_THREADS] == [2]
    assert list(seen.values()) == [(2, 1)]
    run(RunConfig(**common, output=tmp_path / "sync.ome.zarr", cluster="sync"))
    assert levels(tmp_path / "o.ome.zarr") == levels(tmp_path / "sync.ome.zarr")


def test_a_task_failing_after_starting_its_writes_waits_for_them_first(tmp_path, models):
    """No write of a failed task outlives it (its retry is then the only writer of its
    chunks): real tensorstore writes into a real output, the task failing after starting
    them."""
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 64, 64)))
    out = tmp_path / "o.ome.zarr"
    run(RunConfig(input=inp, output=out, model=models["pointwise"], cluster="sync",
                  progress=False))
    data = np.full((2, 256, 256), 7, np.uint8)
    writes: list = []
    with pytest.raises(ValueError, match="after the writes began"), settled_on_error(writes):
        writes.append(start_write("ome-zarr", str(out), "0", ((0, 2), (0, 256), (0, 256)),
                                  data))
        raise ValueError("failed after the writes began")
    assert writes and all(w.done() for w in writes)
    assert (zarr.open_array(out / "0", mode="r")[...] == 7).all()
