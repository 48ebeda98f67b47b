"""Engine-only write throughput: the pointwise model vs one-core zstd-1 on the same chunks.

Measures, in one run on the same CPU and the same input:

1. engine throughput: :func:`pssr_volume.run.run` with the ``pointwise`` model
   (receptive field 0, almost no compute) on a local Dask cluster of warm
   worker processes started as ``--cluster local`` starts them (two task threads each, one
   computing at a time: pssr_volume/compute_slot.py; cluster start-up excluded), so the time is
   the engine's own: read, normalise, round/clip, chunking, codec, pyramid, the
   data-consistency figure, scheduling. Level-0 output megavoxels / wall seconds in total,
   and per CPU second: over the CPU seconds the worker processes used meanwhile (all their
   threads, tensorstore's codec threads included);
2. the steady state: the same for a short (``--shape``, 8 sections by default) and a long
   run (``--long`` sections, 120 by default) of the same sections, and the difference of the
   two (output voxels, wall seconds, worker CPU seconds), so that what every run pays once
   (planning, the scale check, the first tasks' imports, the last pyramid levels) cancels;
   ``--repeat N`` runs N such pairs in turn (each pair under the same load) and reports the
   pair with the median ratio, listing every pair's. Every run uses the same workers, after
   ``--warm-up`` discarded long runs. Each run also pays once, at random, for the C heap
   growing: 70,000 to 200,000 new pages the kernel faults in and zeroes (about 0.5 CPU s
   here), whatever the run's length, which is why the long run is 120 sections and not 40
   (the ratio of 40 varied 0.16-0.27 from pair to pair); the workers' page faults per block
   are reported;
3. the zstd-1 baseline: the first long run's level 0 read back, cut into the array's
   (inner) chunks and every chunk encoded with ``numcodecs.Zstd(level=1)`` in
   this process, one thread: megavoxels encoded / seconds, measured again right after every
   pair and taken as that pair's (on a shared machine the one-core rate drifted 460-630
   Mvoxel/s between invocations: a pass at the end only had made the ratio follow it);
4. their ratio: the steady-state engine output per CPU second over zstd-1's on one core
   (issue 21 asks for at least 0.25), the output rate over all the machine's cores against
   zstd-1 on one (idle cores count), and the same over the CPU seconds less the stand-in
   network's own (its 128 MiB float32 output a block, which a GPU computes and finishes on
   the device; measured apart, in this process, for one block's tile); the files under each
   level directory against the number of write blocks, the engine's per-stage times and the
   workers' peak memory.

Usage::

    python benchmarks/bench_write.py --shape 8,1024,1024 --long 120 --workers 2 --repeat 5 \
        --json benchmarks/results/write-cpu-steady.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
from bench_engine import make_input, peak_rss_kib

from pssr_volume.allocator import tune_allocator
from pssr_volume.cluster.settings import cluster_settings
from pssr_volume.compute_slot import TASK_THREADS
from pssr_volume.config import ModelConfig, RunConfig
from pssr_volume.model import save_model
from pssr_volume.nets.fast import Pointwise
from pssr_volume.run import plan_run, run

METADATA_FILES = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


def shape_arg(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    z, y, x = (int(v) for v in text.split(","))
    return z, y, x


def _cpu_seconds() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def _cpu_model() -> str:
    """The CPU's name (ratios to zstd-1 differ between CPUs: name it beside them)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _thread_seconds(name: str) -> float:
    """CPU seconds of this process's Python threads called ``name``: a worker's event loop
    runs in its ``MainThread``, the driver's (scheduler and client) in ``IO loop``."""
    import threading

    import psutil

    ids = {t.native_id for t in threading.enumerate() if t.name == name}
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in ids)


def _worker_loop_seconds() -> float:
    return _thread_seconds("MainThread")


def _minor_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Workers:
    """One local Dask cluster of worker processes for the whole benchmark,
    started as ``--cluster local`` starts its own, so every run after the warm-up finds its
    workers' imports done and their C heap grown (a run may still grow it once, by chance:
    see the module's notes on ``--long``)."""

    def __init__(self, workers: int, dask_defaults: bool = False):
        from dask.distributed import Client, LocalCluster

        # the workers and scheduler of --cluster local, or Dask's defaults (--dask-defaults)
        with cluster_settings(dask_defaults):
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=TASK_THREADS,
                                        processes=True, dashboard_address=None,
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        self.client.run(lambda: __import__("pssr_volume.tasks") and None)
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.client.run(lambda: __import__("torch").set_num_threads(threads))  # as local

    def total(self, fn: Any) -> float:
        return float(sum(self.client.run(fn).values()))

    def run(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """One run: wall seconds, stats, peak worker RSS KiB, the CPU seconds and minor page
        faults of the workers during the run, this process's CPU seconds (the driver, with
        the cluster's scheduler) and the CPU seconds of Dask's event loops (the workers'
        and the driver's: Dask's own bookkeeping)."""
        config = RunConfig(cluster=self.cluster.scheduler_address, progress=False, **cfg)
        cpu0, faults0 = self.total(_cpu_seconds), self.total(_minor_faults)
        loops0 = self.total(_worker_loop_seconds) + _thread_seconds("IO loop")
        driver0, t0 = _cpu_seconds(), time.perf_counter()
        stats = run(config)
        wall, driver = time.perf_counter() - t0, _cpu_seconds() - driver0
        cpu = self.total(_cpu_seconds) - cpu0
        loops = self.total(_worker_loop_seconds) + _thread_seconds("IO loop") - loops0
        faults = int(self.total(_minor_faults) - faults0)
        rss = max(self.client.run(peak_rss_kib).values())
        return {"wall": wall, "stats": stats, "rss": rss, "cpu": cpu, "faults": faults,
                "driver_cpu": driver, "dask_loops_cpu": loops}

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


class ZstdBaseline:
    """Every (inner) chunk of a level-0 array, to encode with zstd-1 on one core."""

    def __init__(self, level0: Path):
        arr = zarr.open_array(str(level0), mode="r")
        data = np.asarray(arr[...])
        cz, cy, cx = arr.chunks  # the inner chunk shape, also for a sharded array
        self.chunks = [np.ascontiguousarray(data[z:z + cz, y:y + cy, x:x + cx])
                       for z in range(0, data.shape[0], cz)
                       for y in range(0, data.shape[1], cy)
                       for x in range(0, data.shape[2], cx)]
        self.voxels = data.size
        self.layout = {"chunk_shape": [cz, cy, cx],
                       "shard_shape": list(arr.shards) if arr.shards else None,
                       "chunks": len(self.chunks)}

    def encode(self) -> dict[str, Any]:
        """One pass over the chunks: seconds, Mvoxel/s and compression ratio."""
        codec = numcodecs.Zstd(level=1)
        t0 = time.perf_counter()
        nbytes = sum(len(codec.encode(c)) for c in self.chunks)
        seconds = time.perf_counter() - t0
        return {**self.layout, "seconds": seconds, "mvoxel_s": self.voxels / 1e6 / seconds,
                "compression_ratio": self.voxels / nbytes}


def level_files(out: Path) -> dict[str, dict[str, int]]:
    """Files under each level directory (recursively): data files and metadata files."""
    levels = sorted((d for d in out.iterdir() if d.is_dir() and d.name.isdigit()),
                    key=lambda d: int(d.name))
    counts = {}
    for d in levels:
        files = [f for f in d.rglob("*") if f.is_file()]
        meta = sum(f.name in METADATA_FILES for f in files)
        counts[d.name] = {"data": len(files) - meta, "metadata": meta}
    return counts


def _run(workers: Workers, inp: Path, model: Path, out: Path, args: argparse.Namespace,
         extra: dict[str, Any]) -> dict[str, Any]:
    """One engine run on ``inp``: :meth:`Workers.run`'s figures, the output and its voxels."""
    cfg = {"input": inp, "output": out, "model": model, "ngff_version": args.ngff_version,
           **extra}
    figures = workers.run(cfg)
    voxels = int(np.prod(zarr.open_array(str(out / "0"), mode="r").shape))
    return {**figures, "out": out, "voxels": voxels}


def block_tile(inp: Path, model: Path, extra: dict[str, Any]) -> tuple[int, int, int]:
    """The input tile (z, y, x) of a run's first block, as the engine plans it."""
    plan = plan_run(RunConfig(input=inp, output=inp.with_suffix(".plan.ome.zarr"), model=model,
                              cluster="sync", progress=False, **extra))
    tile = plan.job.grid.block_at((0, 0, 0)).tile
    z, y, x = (b - a for a, b in tile)
    return z, y, x


def standin_cpu_per_block(model: Path, tile: tuple[int, int, int]) -> float:
    """CPU seconds the stand-in network takes for one block's input ``tile`` (z, y, x), in
    this process, alone, on one torch thread (as each of two workers on two cores): the
    median of five after a warm-up. Measured apart because a block's network stage, in wall
    seconds, also counts the time the other task thread of its worker (committing) and the
    other workers took the core meanwhile."""
    import torch

    from pssr_volume.predict import get_predictor

    tune_allocator()  # as a block task does: the output's pages reused, not faulted in anew
    torch.set_num_threads(1)
    predictor = get_predictor(str(model), "standin", "cpu")
    tiles = np.random.default_rng(0).random((tile[0], 1, tile[1], tile[2]), dtype=np.float32)
    seconds = []
    for _ in range(6):
        t0 = time.thread_time()
        predictor(tiles)
        seconds.append(time.thread_time() - t0)
    return float(np.median(seconds[1:]))


def steady_state(short: dict[str, Any], long: dict[str, Any], zstd_mvoxel_s: float,
                 cores: int, network_per_block: float) -> dict[str, Any]:
    """The long run minus the short one: output, wall and CPU seconds, their rates, the ratio
    to zstd-1 per CPU second, and the same without the stand-in network's seconds (the
    engine's own CPU: read, normalise, round, consistency, codec, pyramid), the output rate
    over the machine's ``cores`` against zstd-1's on one (issue 21's own figure: idle cores
    count) and the workers' minor page faults per block."""
    dv = (long["voxels"] - short["voxels"]) / 1e6
    dwall, dcpu = long["wall"] - short["wall"], long["cpu"] - short["cpu"]
    blocks = max(1, long["stats"].blocks_total - short["stats"].blocks_total)
    dnet = network_per_block * blocks

    def per_block(key: str) -> float:
        return (long[key] - short[key]) / blocks

    return {"output_mvoxel": round(dv, 3), "wall_s": round(dwall, 3), "cpu_s": round(dcpu, 3),
            "ratio_per_core_to_zstd1": round(dv / dwall / cores / zstd_mvoxel_s, 4),
            "faults_per_block": round(per_block("faults")),
            "driver_ms_per_block": round(1e3 * per_block("driver_cpu"), 2),
            "dask_loops_ms_per_block": round(1e3 * per_block("dask_loops_cpu"), 2),
            "mvoxel_s": round(dv / dwall, 3), "cores_used": round(dcpu / dwall, 3),
            "mvoxel_per_cpu_s": round(dv / dcpu, 3),
            "ratio_per_cpu_s_to_zstd1": round(dv / dcpu / zstd_mvoxel_s, 4),
            "network_s": round(dnet, 3),
            "engine_own_ratio_to_zstd1": round(dv / (dcpu - dnet) / zstd_mvoxel_s, 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="8,1024,1024", help="the short run's input (LR) Z,Y,X")
    p.add_argument("--long", type=int, default=120, help="sections of the long run")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--block-shape", default=None, help="Z,Y,X (output voxels); default: engine's")
    p.add_argument("--shard-shape", default=None, help="Z,Y,X; passed to RunConfig if given")
    p.add_argument("--ngff-version", default="0.5", choices=["0.4", "0.5"])
    p.add_argument("--repeat", type=int, default=1,
                   help="short/long pairs, each followed by a zstd-1 pass (the pair with the "
                        "median ratio is reported)")
    p.add_argument("--warm-up", type=int, default=1,
                   help="long runs first, discarded (workers as a long run's later blocks)")
    p.add_argument("--dask-defaults", action="store_true",
                   help="workers and scheduler with Dask's default settings instead of "
                        "pssr_volume.cluster.settings (to compare)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    shape = shape_arg(args.shape)
    assert shape is not None
    long_shape = (args.long, shape[1], shape[2])
    extra: dict[str, Any] = {}
    if args.block_shape:
        extra["block_shape"] = shape_arg(args.block_shape)
    if args.shard_shape:
        extra["shard_shape"] = shape_arg(args.shard_shape)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "pointwise.safetensors"
        save_model(model, Pointwise(), ModelConfig(name="pointwise", architecture="pointwise"))
        inputs = {}
        for name, sh in (("short", shape), ("long", long_shape)):
            inputs[name] = Path(tmp) / f"{name}.tif"
            make_input(inputs[name], sh)  # the long input begins with the short one's sections
        workers = Workers(args.workers, args.dask_defaults)
        try:
            for i in range(args.warm_up):  # discarded: the first runs of a worker pay more
                _run(workers, inputs["long"], model, Path(tmp) / f"warm-up{i}.ome.zarr", args,
                     extra)
            pairs = []  # short and long in turn: each pair sees the same load
            zstds = []  # zstd-1 right after each pair: the same moment of a shared machine
            baseline = None
            for i in range(args.repeat):
                pairs.append({name: _run(workers, inp, model,
                                         Path(tmp) / f"{name}{i}.ome.zarr", args, extra)
                              for name, inp in inputs.items()})
                baseline = baseline or ZstdBaseline(pairs[-1]["long"]["out"] / "0")
                zstds.append(baseline.encode())
        finally:
            workers.close()
        files = level_files(pairs[-1]["long"]["out"])
        out_shape = list(zarr.open_array(str(pairs[-1]["long"]["out"] / "0"), mode="r").shape)
        network_per_block = standin_cpu_per_block(model, block_tile(inputs["long"], model, extra))
    cores = os.cpu_count() or 1
    states = [steady_state(p["short"], p["long"], z["mvoxel_s"], cores, network_per_block)
              for p, z in zip(pairs, zstds)]
    middle = sorted(range(len(states)),
                    key=lambda i: states[i]["ratio_per_cpu_s_to_zstd1"])[len(states) // 2]
    steady, found = states[middle], pairs[middle]  # the pair with the median ratio
    zstd = zstds[middle]
    steady["pairs"] = [{**{k: st[k] for k in ("ratio_per_cpu_s_to_zstd1",
                                               "engine_own_ratio_to_zstd1",
                                               "ratio_per_core_to_zstd1", "mvoxel_s",
                                               "faults_per_block")},
                        "zstd1_mvoxel_s": round(z["mvoxel_s"], 1)}
                       for st, z in zip(states, zstds)]
    short, long = found["short"], found["long"]
    dv, dwall, dcpu = steady["output_mvoxel"], steady["wall_s"], steady["cpu_s"]
    stats = long["stats"]
    stages = {k: float(v) for k, v in stats.stage_seconds.items()}
    single = {name: {"input_shape": list(sh), "seconds": round(r["wall"], 3),
                     "cpu_s": round(r["cpu"], 3),
                     "mvoxel_s": round(r["voxels"] / 1e6 / r["wall"], 3),
                     "mvoxel_per_cpu_s": round(r["voxels"] / 1e6 / r["cpu"], 3)}
              for (name, r), sh in zip(found.items(), (shape, long_shape))}
    results = {
        "cpu": platform.processor() or platform.machine(), "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "load": round(os.getloadavg()[0], 1),
        "python": platform.python_version(), "zarr": zarr.__version__,
        "numcodecs": numcodecs.__version__, "output_shape": out_shape, "workers": args.workers,
        "ngff_version": args.ngff_version, **{k: list(v) for k, v in extra.items()},
        "dask_settings": "dask defaults" if args.dask_defaults else "pssr_volume.cluster.settings",
        "runs": single, "steady": steady,
        "zstd1": {k: round(v, 3) if isinstance(v, float) else v for k, v in zstd.items()},
        "write_blocks": stats.blocks_total, "pyramid_tasks": stats.pyramid_tasks,
        "files": files,
        "at_most_one_file_per_block": all(c["data"] <= stats.blocks_total
                                          for c in files.values()),
        "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
        "peak_worker_rss_mib": round(max(short["rss"], long["rss"]) / 1024),
    }
    print(f"pointwise model, input {args.shape} and {args.long} sections -> output "
          f"{'x'.join(map(str, out_shape))}, ngff {args.ngff_version}, {args.workers} workers "
          f"on {os.cpu_count()} cores (load {results['load']}), {stats.blocks_total} write "
          f"blocks, chunk {'x'.join(map(str, zstd['chunk_shape']))}"
          + (f", shard {'x'.join(map(str, zstd['shard_shape']))}" if zstd["shard_shape"] else ""))
    print("Mvoxel: level-0 output voxels; per CPU s: over the workers' CPU seconds")
    for name, r in single.items():
        print(f"{name:>6} run: {r['seconds']:.2f} s, {r['mvoxel_s']:.1f} Mvoxel/s, "
              f"{r['mvoxel_per_cpu_s']:.1f} Mvoxel per CPU s")
    print(f"steady state (long - short): {dv:.0f} Mvoxel in {dwall:.2f} s on {dcpu:.2f} CPU s: "
          f"{steady['mvoxel_s']:.1f} Mvoxel/s on {steady['cores_used']:.2f} cores, "
          f"{steady['mvoxel_per_cpu_s']:.1f} Mvoxel per CPU s")
    print(f"zstd-1, one core: {zstd['mvoxel_s']:.1f} Mvoxel/s; ratio "
          f"{steady['ratio_per_cpu_s_to_zstd1']:.4f} (target >= 0.25: "
          + ("met" if steady["ratio_per_cpu_s_to_zstd1"] >= 0.25 else "NOT met")
          + f"); without the stand-in network's {steady['network_s']:.2f} s: "
          f"{steady['engine_own_ratio_to_zstd1']:.4f}; per core of the machine (idle counted): "
          f"{steady['ratio_per_core_to_zstd1']:.4f}; "
          f"{steady['faults_per_block']} page faults a block; the driver's CPU: "
          f"{steady['driver_ms_per_block']} ms a block; Dask's event loops (workers' and "
          f"driver's): {steady['dask_loops_ms_per_block']} ms a block")
    print("every pair (ratio, without the network, per core, Mvoxel/s, faults a block, "
          "zstd-1 Mvoxel/s after it): "
          + "; ".join(f"{p['ratio_per_cpu_s_to_zstd1']:.3f}, {p['engine_own_ratio_to_zstd1']:.3f}"
                      f", {p['ratio_per_core_to_zstd1']:.3f}, {p['mvoxel_s']:.0f}, "
                      f"{p['faults_per_block']}, {p['zstd1_mvoxel_s']:.0f}"
                      for p in steady["pairs"]))
    print("files per level (data + metadata): "
          + ", ".join(f"{k}: {c['data']}+{c['metadata']}" for k, c in files.items())
          + f"; at most one data file per write block: {results['at_most_one_file_per_block']}")
    if stages:
        whole = sum(stages.values()) or 1.0
        print("long run, stage seconds (summed over blocks): " + ", ".join(
            f"{k} {v:.2f} ({100 * v / whole:.0f}%)" for k, v in stages.items()))
    print(f"peak worker RSS {results['peak_worker_rss_mib']} MiB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
