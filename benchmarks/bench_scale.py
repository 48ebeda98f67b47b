"""A simulated GPU cluster: how many GPU workers one driver keeps busy.

The real driver (:func:`pssr_volume.engine.execute`: its task window, lazy block enumeration
and result handling), the real Dask scheduler (in the driver's process, as ``--cluster
local``, ``cuda`` and ``slurm`` run it) and the real journal, with N Dask workers of one thread
each whose block task is a stand-in: it sleeps for the time the network would take on a GPU,
then records the block in the journal (and with ``--store small`` writes a 64 x 64 tile of a
real Zarr array, a chunk per block). The N workers live in one separate process (a "farm" of
``dask.distributed.Worker`` objects on one event loop), so 64 to 256 of them fit on a 2-core
machine; the driver's process holds only what a real run's driver holds.

The plan is the 1 Tvoxel example's GPU plan (an empty 1000 x 32768 x 32768 uint8 Zarr array at
30 x 8 x 8 nm, ``--device cuda``: blocks of 24 x 4096 x 4096 output voxels), cut to ``--rounds``
x N blocks with ``--roi``. A block's network time is the plan's own figure: the bundled
model's FLOPs over the block and its halo at the planning rate of an H100 (30 % of its FP32
peak, ``pssr_volume/gpus.py``): about 1.37 s. ``--time-scale`` divides it (1 = real time).
The later pyramid tasks (CPU work, not GPU) only record themselves and are reported apart.

Reported per N: block tasks per second, driver CPU seconds per task (the driver's process:
the engine, the Dask client and the scheduler; and its main thread alone), the farm's CPU per
task (worker-side Dask overhead, spread over the nodes of a real cluster), and worker
utilisation: the workers' sleeping seconds over N x the wall time of the block stage (from
the start of submission to the last block's result).

    python benchmarks/bench_scale.py --workers 8 64 256 [--rounds 12] [--store null|small]
        [--json benchmarks/results/scale-gpu-sim.json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SLEEP = 1.0  # seconds of network time a block task sleeps (set in the farm process)
STORE: str | None = None  # a Zarr array each block writes a 64 x 64 tile of (None: no write)
TILE = 64


def sim_block(job: Any, index: tuple[int, int, int]) -> tuple[tuple[int, int, int], dict]:
    """The stand-in block task: the network's time asleep, a tile written (optionally),
    the block recorded in the journal. Returns what process_block returns."""
    from dask.distributed import get_worker

    from pssr_volume.io.journal import Journal
    from pssr_volume.tasks import block_key

    start, t0 = time.time(), time.perf_counter()
    time.sleep(SLEEP)
    slept = time.perf_counter() - t0
    if STORE is not None:
        import numpy as np
        import zarr

        z, y, x = index
        arr = zarr.open_array(STORE, mode="r+")
        arr[z, y * TILE:(y + 1) * TILE, x * TILE:(x + 1) * TILE] = np.full(
            (TILE, TILE), (z + y + x) % 251, np.uint8)
    # the note: when it slept and on which worker (the gaps between a worker's tasks)
    Journal(job.output).mark(block_key(index), f"{start:.6f} {start + slept:.6f} "
                                               f"{get_worker().address}")
    return index, {"network": slept}


def sim_pyramid(job: Any, stage: int, region: Any) -> tuple[Any, dict]:
    """The stand-in later pyramid task: recorded in the journal, nothing else."""
    from pssr_volume.io.journal import Journal
    from pssr_volume.tasks import pyramid_key

    Journal(job.output).mark(pyramid_key(job.stages[stage].first, region))
    return region, {}


async def _farm(address: str, n: int) -> None:
    from dask.distributed import Worker

    workers = [Worker(address, nthreads=1, memory_limit=0, dashboard=False)
               for _ in range(n)]
    await asyncio.gather(*workers)
    await asyncio.Event().wait()  # until the driver kills this process


def farm_main(address: str, n: int, sleep: float, store: str) -> None:
    """The worker farm's process: N one-thread workers of the scheduler at ``address``."""
    import bench_scale  # the module the tasks are pickled by reference as

    bench_scale.SLEEP, bench_scale.STORE = sleep, (store or None)
    import dask

    # what one worker per node does at little cost, N workers in one process do N times:
    # the statistical profiler (a sample every 10 ms each) and the system monitor go
    dask.config.set({"distributed.worker.profile.enabled": False,
                     "distributed.admin.system-monitor.interval": "60s",
                     "distributed.admin.system-monitor.gil.enabled": False})
    import pssr_volume.io.journal
    import pssr_volume.tasks  # noqa: F401 - imported once here, not in the first round's tasks
    logging.getLogger("distributed").setLevel(logging.ERROR)
    asyncio.run(_farm(address, n))


class Clock:
    """The engine's progress callbacks, timed: ``start`` once, ``advance`` per task."""

    def __init__(self, blocks: int):
        self.blocks = blocks
        self.t0 = self.cpu0 = self.thread0 = self.wall0 = 0.0
        self.block_end = self.block_cpu = self.block_thread = 0.0
        self.done = 0

    def start(self, total: int) -> None:
        self.wall0 = time.time()
        self.t0, self.cpu0, self.thread0 = (time.perf_counter(), time.process_time(),
                                            time.thread_time())

    def advance(self, n: int) -> None:
        self.done += n
        if self.done == self.blocks:  # the block stage is over
            self.block_end = time.perf_counter() - self.t0
            self.block_cpu = time.process_time() - self.cpu0
            self.block_thread = time.thread_time() - self.thread0


def _one_at_a_time() -> type:
    """The driver before batching, for comparison in the same run: a graph update per task
    submitted, a result fetched per finished task (a round trip each)."""
    from pssr_volume.cluster.executors import DaskExecutor

    class OneAtATime(DaskExecutor):
        def submit_many(self, fn: Any, args: Any, keys: Any) -> list[Any]:
            return [self.submit(fn, *a, key=k) for a, k in zip(args, keys)]

        def fetch(self, futures: Any) -> dict[Any, Any]:
            return {}

        def completion_queue(self) -> Any:
            queue = super().completion_queue()
            queue.next_batch = lambda: [next(queue)]
            return queue

    return OneAtATime


def _plan(tvox: str, out: str, blocks: int) -> Any:
    """The 1 Tvoxel GPU plan cut (by a --roi of whole blocks) to ``blocks`` blocks."""
    from pssr_volume.config import RunConfig
    from pssr_volume.plan import make_plan

    per_layer = 32 * 32  # blocks of 1024 input pixels a side in a 32768-pixel section
    if blocks <= per_layer:
        if blocks % 32:
            raise SystemExit(f"{blocks} blocks: use a multiple of 32 (N x rounds)")
        roi = ((0, 24), (0, 1024 * (blocks // 32)), (0, 32768))
    else:
        if blocks % per_layer:
            raise SystemExit(f"{blocks} blocks: over 1024, use a multiple of 1024")
        roi = ((0, 24 * (blocks // per_layer)), (0, 32768), (0, 32768))
    return make_plan(RunConfig(input=tvox, output=out, device="cuda", gpu="h100",
                               voxel_size=(30.0, 8.0, 8.0), cluster="sync", roi=roi))


def measure(n: int, rounds: int, time_scale: float, store: str, tmp: Path,
            tvox: str, farms: int = 1, unbatched: bool = False) -> dict[str, Any]:
    """One simulated run with ``n`` workers; the figures of its block stage."""
    import psutil
    import zarr
    from dask.distributed import Client, LocalCluster

    import pssr_volume.engine as engine
    from pssr_volume.cluster.executors import DaskExecutor
    from pssr_volume.estimate import estimate
    from pssr_volume.io.journal import Journal

    OneAtATime = _one_at_a_time()  # noqa: N806 - a class
    out = tmp / f"out-{n}{'-unbatched' if unbatched else ''}"
    plan = _plan(tvox, str(out), rounds * n)
    job = plan.job
    network_s = estimate(plan).block_gpu_seconds()
    sleep = network_s / time_scale
    (out / ".pssr-volume").mkdir(parents=True)
    store_path = ""
    if store == "small":
        store_path = str(out.with_suffix(".tiles.zarr"))
        cz, cy, cx = job.grid.counts
        zarr.create_array(store_path, shape=(cz, cy * TILE, cx * TILE), chunks=(1, TILE, TILE),
                          dtype="uint8", fill_value=0)
    here = Path(__file__).resolve().parent
    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        sizes = [n // farms + (k < n % farms) for k in range(farms)]
        procs = [subprocess.Popen([sys.executable, str(here / "bench_scale.py"), "--farm",
                                   cluster.scheduler_address, str(size), repr(sleep), store_path],
                                  cwd=here.parent, stderr=subprocess.DEVNULL)
                 for size in sizes if size]
        try:
            client.wait_for_workers(n, timeout=300)
            import bench_scale  # the tasks, pickled by reference (as process_block is)

            engine.process_block = bench_scale.sim_block  # type: ignore[assignment]
            engine.pyramid_task = bench_scale.sim_pyramid  # type: ignore[assignment]
            clock = Clock(len(job.grid))
            farm_cpu0 = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)
            executor = (OneAtATime if unbatched else DaskExecutor)(client)
            stats = engine.execute(job, executor, clock)
            farm_cpu = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)
            farm_cpu -= farm_cpu0
        finally:
            for p in procs:
                p.kill()
                p.wait()
    m = len(job.grid)
    slept = stats.stage_seconds.get("network", 0.0)
    first, gap = _timeline(Journal(out).notes(), clock.wall0)
    return {
        "workers": n, "block_tasks": m, "pyramid_tasks": stats.pyramid_tasks,
        "block_shape": list(job.grid.block), "network_s_per_task": round(network_s, 4),
        "time_scale": time_scale, "sleep_s": round(sleep, 4), "store": store,
        "farm_processes": len(procs), "unbatched": unbatched,
        "block_stage_s": round(clock.block_end, 3),
        "tasks_per_s": round(m / clock.block_end, 2),
        "driver_cpu_ms_per_task": round(1000 * clock.block_cpu / m, 3),
        "driver_main_thread_ms_per_task": round(1000 * clock.block_thread / m, 3),
        "farm_cpu_ms_per_task": round(1000 * farm_cpu / (m + stats.pyramid_tasks), 3),
        "utilisation": round(slept / (n * clock.block_end), 4),
        "first_start_s": round(first, 3), "mean_gap_ms": round(1000 * gap, 2),
        "load": round(os.getloadavg()[0], 1),
    }


def _timeline(notes: dict[str, str], t0: float) -> tuple[float, float]:
    """From the block tasks' notes: seconds from the start of submission to the first task's
    start, and the mean gap between a worker's tasks (one ending, its next starting)."""
    runs: dict[str, list[tuple[float, float]]] = {}
    for note in notes.values():
        start, end, worker = note.split()
        runs.setdefault(worker, []).append((float(start), float(end)))
    gaps = [b[0] - a[1] for r in runs.values() for a, b in zip(sorted(r), sorted(r)[1:])]
    first = min(s for r in runs.values() for s, _ in r) - t0
    return first, (sum(gaps) / len(gaps) if gaps else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[8, 64, 256])
    ap.add_argument("--rounds", type=int, default=12, help="block tasks per worker")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="divide the GPU time a task sleeps by this (1: real time)")
    ap.add_argument("--store", choices=["null", "small"], default="null")
    ap.add_argument("--workers-per-process", type=int, default=64,
                    help="the farm puts at most this many workers in one process")
    ap.add_argument("--unbatched", action="store_true",
                    help="also run each N with the driver's former one-task-at-a-time path")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--farm", nargs=4, metavar=("ADDRESS", "N", "SLEEP", "STORE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.farm:
        farm_main(args.farm[0], int(args.farm[1]), float(args.farm[2]), args.farm[3])
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import zarr

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tvox = str(Path(tmp) / "tvox.zarr")
        zarr.create_array(tvox, shape=(1000, 32768, 32768), chunks=(1, 1024, 1024),
                          dtype="uint8", fill_value=0)
        for n, unbatched in itertools.product(args.workers, [False, True][:1 + args.unbatched]):
            row = measure(n, args.rounds, args.time_scale, args.store, Path(tmp), tvox,
                          -(-n // args.workers_per_process), unbatched)
            rows.append(row)
            print(f"N={n:4d}{' unbatched' if unbatched else ''}: {row['block_tasks']} tasks "
                  f"of {row['sleep_s']:.2f} s in "
                  f"{row['block_stage_s']:.1f} s: {row['tasks_per_s']:.1f} tasks/s, "
                  f"utilisation {row['utilisation']:.1%}, driver CPU "
                  f"{row['driver_cpu_ms_per_task']:.2f} ms/task (main thread "
                  f"{row['driver_main_thread_ms_per_task']:.2f}), farm CPU "
                  f"{row['farm_cpu_ms_per_task']:.2f} ms/task; first task after "
                  f"{row['first_start_s']:.2f} s, {row['mean_gap_ms']:.1f} ms between a "
                  f"worker's tasks; load {row['load']}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "cpus": os.cpu_count(),
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
