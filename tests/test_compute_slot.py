"""The compute slot (pssr_volume/compute_slot.py): a worker process of this tool runs two task
threads; one task computes at a time while another waits for its writes to reach the disk."""

from __future__ import annotations

import threading

from conftest import em_like, levels, write_tiff

from pssr_volume.cluster.executors import open_executor
from pssr_volume.cluster.spec import check_cluster
from pssr_volume.compute_slot import TASK_THREADS, ComputeSlot, peaks
from pssr_volume.config import RunConfig
from pssr_volume.run import run


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
