"""Engine-only write throughput: the pointwise model vs one-core zstd-1 on the same chunks.

Measures, in one run on the same CPU and the same input:

1. engine throughput: :func:`pssr_volume.run.run` with the ``pointwise`` model
   (receptive field 0, almost no compute) on a local Dask cluster of warm,
   single-threaded worker processes (cluster start-up excluded), so the time is
   the engine's own: read, normalise, round/clip, chunking, codec, pyramid,
   scheduling. Level-0 output megavoxels / wall seconds in total, and per core: over
   the CPU seconds the worker processes used meanwhile (all their threads, tensorstore's
   codec threads included), i.e. all workers together over the cores they use;
2. the zstd-1 baseline: the output's level 0 read back, cut into the array's
   (inner) chunks and every chunk encoded with ``numcodecs.Zstd(level=1)`` in
   this process, one thread: megavoxels encoded / seconds;
3. their ratio (engine per core / zstd-1; the target is >= 0.15, the aim 0.25),
   the files under each level directory against the number of write blocks,
   the engine's per-stage times (where ``RunStats`` has ``stage_seconds``) and
   the peak resident memory of the workers.

Usage::

    python benchmarks/bench_write.py --shape 8,1024,1024 --workers 2 \
        --json benchmarks/results/write-cpu.json
"""

from __future__ import annotations

import argparse
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

from pssr_volume.config import ModelConfig, RunConfig
from pssr_volume.model import save_model
from pssr_volume.nets.fast import Pointwise
from pssr_volume.run import run

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


def engine_run(cfg: dict[str, Any], workers: int) -> tuple[float, Any, int, float]:
    """One run on a fresh cluster of warm workers: wall seconds, stats, peak worker RSS KiB,
    and the CPU seconds the workers used during the run."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        client.run(lambda: __import__("pssr_volume.tasks") and None)  # warm the workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        client.run(lambda: __import__("torch").set_num_threads(threads))  # as --cluster local
        config = RunConfig(cluster=cluster.scheduler_address, progress=False, **cfg)
        cpu0 = sum(client.run(_cpu_seconds).values())
        t0 = time.perf_counter()
        stats = run(config)
        wall = time.perf_counter() - t0
        cpu = sum(client.run(_cpu_seconds).values()) - cpu0
        rss = max(client.run(peak_rss_kib).values())
    finally:
        client.close()
        cluster.close()
    return wall, stats, rss, cpu


def zstd_baseline(level0: Path, repeat: int) -> dict[str, Any]:
    """Encode every (inner) chunk of the level-0 array with zstd-1, one core; best of ``repeat``."""
    arr = zarr.open_array(str(level0), mode="r")
    data = np.asarray(arr[...])
    cz, cy, cx = arr.chunks  # the inner chunk shape, also for a sharded array
    chunks = [np.ascontiguousarray(data[z:z + cz, y:y + cy, x:x + cx])
              for z in range(0, data.shape[0], cz)
              for y in range(0, data.shape[1], cy)
              for x in range(0, data.shape[2], cx)]
    codec = numcodecs.Zstd(level=1)
    best, nbytes = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        nbytes = sum(len(codec.encode(c)) for c in chunks)
        best = min(best, time.perf_counter() - t0)
    return {"chunk_shape": [cz, cy, cx], "shard_shape": list(arr.shards) if arr.shards else None,
            "chunks": len(chunks), "seconds": best,
            "mvoxel_s": data.size / 1e6 / best, "compression_ratio": data.size / nbytes}


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="8,1024,1024", help="input (LR) shape Z,Y,X")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--block-shape", default=None, help="Z,Y,X (output voxels); default: engine's")
    p.add_argument("--shard-shape", default=None, help="Z,Y,X; passed to RunConfig if given")
    p.add_argument("--ngff-version", default="0.5", choices=["0.4", "0.5"])
    p.add_argument("--repeat", type=int, default=1, help="engine runs and zstd passes; best kept")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    shape = shape_arg(args.shape)
    assert shape is not None
    extra: dict[str, Any] = {}
    if args.block_shape:
        extra["block_shape"] = shape_arg(args.block_shape)
    if args.shard_shape:
        extra["shard_shape"] = shape_arg(args.shard_shape)
    with tempfile.TemporaryDirectory() as tmp:
        inp, model = Path(tmp) / "in.tif", Path(tmp) / "pointwise.safetensors"
        make_input(inp, shape)
        save_model(model, Pointwise(), ModelConfig(name="pointwise", architecture="pointwise"))
        runs = []
        for i in range(args.repeat):
            out = Path(tmp) / f"out{i}.ome.zarr"
            cfg = {"input": inp, "output": out, "model": model,
                   "ngff_version": args.ngff_version, **extra}
            runs.append((*engine_run(cfg, args.workers), out))
        wall, stats, rss, cpu, out = min(runs, key=lambda r: r[0])
        zstd = zstd_baseline(out / "0", args.repeat)
        files = level_files(out)
        out_shape = list(zarr.open_array(str(out / "0"), mode="r").shape)
    voxels = int(np.prod(out_shape))
    total = voxels / 1e6 / wall
    cores = cpu / wall  # the cores the workers used, on average (codec threads included)
    stages = {k: float(v) for k, v in getattr(stats, "stage_seconds", {}).items()}
    results = {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "python": platform.python_version(), "zarr": zarr.__version__,
        "numcodecs": numcodecs.__version__, "input_shape": list(shape),
        "output_shape": out_shape, "workers": args.workers, "cores_used": round(cores, 3),
        "ngff_version": args.ngff_version, **{k: list(v) for k, v in extra.items()},
        "engine_seconds": round(wall, 3), "engine_seconds_all": [round(r[0], 3) for r in runs],
        "engine_mvoxel_s": round(total, 3), "engine_mvoxel_s_per_core": round(total / cores, 3),
        "zstd1": {k: round(v, 3) if isinstance(v, float) else v for k, v in zstd.items()},
        "ratio_per_core_to_zstd1": round(total / cores / zstd["mvoxel_s"], 4),
        "write_blocks": stats.blocks_total, "pyramid_tasks": stats.pyramid_tasks,
        "files": files,
        "at_most_one_file_per_block": all(c["data"] <= stats.blocks_total
                                          for c in files.values()),
        "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
        "peak_worker_rss_mib": round(rss / 1024),
    }
    print(f"pointwise model, input {args.shape} -> output {'x'.join(map(str, out_shape))}, "
          f"ngff {args.ngff_version}, {args.workers} workers using {cores:.2f} of "
          f"{os.cpu_count()} cores, {stats.blocks_total} write blocks, "
          f"chunk {'x'.join(map(str, zstd['chunk_shape']))}"
          + (f", shard {'x'.join(map(str, zstd['shard_shape']))}" if zstd["shard_shape"] else ""))
    print("Mvoxel/s are level-0 output voxels per wall second")
    print(f"{'engine s':>9} {'engine Mvox/s':>14} {'per core':>9} {'zstd-1 Mvox/s':>14} "
          f"{'ratio':>7} {'peak RSS MiB':>13}")
    print(f"{wall:>9.2f} {total:>14.2f} {total / cores:>9.2f} {zstd['mvoxel_s']:>14.1f} "
          f"{results['ratio_per_core_to_zstd1']:>7.4f} {results['peak_worker_rss_mib']:>13}")
    print("target: ratio >= 0.15 (aim 0.25): "
          + ("met" if results["ratio_per_core_to_zstd1"] >= 0.15 else "NOT met"))
    print("files per level (data + metadata): "
          + ", ".join(f"{k}: {c['data']}+{c['metadata']}" for k, c in files.items())
          + f"; at most one data file per write block: {results['at_most_one_file_per_block']}")
    if stages:
        whole = sum(stages.values()) or 1.0
        print("stage seconds (summed over blocks): " + ", ".join(
            f"{k} {v:.2f} ({100 * v / whole:.0f}%)" for k, v in stages.items()))
    else:
        print("stage seconds: RunStats has no stage_seconds")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
