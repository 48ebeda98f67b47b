"""The driver's batches (issue 21 item 5): block and pyramid tasks go to the scheduler a batch
at a time and come back a batch at a time, never more than the window in flight; the output
is the same as one task at a time (benchmarks/bench_scale.py measures what it saves)."""

from __future__ import annotations

from typing import Any

from conftest import em_like, levels, write_tiff
from dask.distributed import Client

from pssr_volume.cluster.executors import DaskExecutor
from pssr_volume.config import RunConfig
from pssr_volume.engine import execute
from pssr_volume.io.ome_zarr import open_output
from pssr_volume.run import plan_run, run


class Recording(DaskExecutor):
    """A real Dask executor that counts its batches and the tasks in flight."""

    def __init__(self, client: Any):
        super().__init__(client, planned_workers=8)  # a window of 32 tasks, batches of 8
        self.batches: list[int] = []
        self.fetched: list[int] = []
        self.in_flight = self.most_in_flight = 0

    def submit_many(self, fn, args, keys):
        self.batches.append(len(args))
        self.in_flight += len(args)
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return super().submit_many(fn, args, keys)

    def fetch(self, futures):
        self.fetched.append(len(futures))
        self.in_flight -= len(futures)
        return super().fetch(futures)


def test_tasks_go_and_come_back_in_batches_within_the_window(tmp_path, models, scheduler):
    inp = write_tiff(tmp_path / "in.tif", em_like((4, 64, 64), seed=3))
    cfg = RunConfig(input=inp, output=tmp_path / "o.ome.zarr", model=models["pointwise"],
                    block_shape=(1, 32, 32), chunk_shape=(1, 16, 16), levels=3, cluster="sync")
    plan = plan_run(cfg)
    blocks = len(plan.job.grid)
    assert blocks == 4 * 8 * 8
    open_output(cfg.output, plan.layout, {**plan.provenance, "torch_threads": 0})
    with Client(scheduler) as client:
        ex = Recording(client)
        limit = 4 * ex.n_workers
        stats = execute(plan.job, ex)
    pyramid = stats.pyramid_tasks
    assert stats.blocks_done == blocks and pyramid > 0
    assert sum(ex.batches) == sum(ex.fetched) == blocks + pyramid
    assert max(ex.batches) == limit // 4 == 8
    assert len(ex.batches) == -(-blocks // 8) - (-pyramid // 8)  # every batch full but the last
    assert ex.most_in_flight <= limit
    ref = tmp_path / "ref.ome.zarr"
    run(cfg.model_copy(update={"output": ref}))
    assert levels(cfg.output) == levels(ref)
