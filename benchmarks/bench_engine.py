"""Engine overhead: raw model forward vs end-to-end ``pssr-volume run``, and worker memory.

Measures, in one run on the same CPU and the same input:

1. raw forward throughput: the model applied to whole sections held in memory
   (no tiling, no I/O, no Dask), all cores in one process;
2. end-to-end throughput: :func:`pssr_volume.run.run` on a local Dask cluster
   (TIFF in, blockwise inference with halos, OME-Zarr with pyramid out), with
   warm workers (cluster start-up is reported separately);
3. their ratio, and the same for a volume 4x larger (4x the sections);
4. the peak resident memory of the worker processes for both volumes, and its ratio.

Usage::

    python benchmarks/bench_engine.py --shape 8,512,512 --workers 2 \
        --block-shape 8,2048,2048 --json benchmarks/results/engine-cpu.json

Throughputs are output megapixels (level-0 voxels) per second.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from pssr_volume.bundled import bundled_model_path
from pssr_volume.config import RunConfig
from pssr_volume.demo import make_demo_volume
from pssr_volume.intensity import intensity_range, normalize, sample_volume
from pssr_volume.model import model_info
from pssr_volume.plan import DEFAULT_BLOCK_YX, DEFAULT_BLOCK_Z
from pssr_volume.predict import Predictor
from pssr_volume.run import run


def make_input(path: Path, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """An EM-like LR stack: demo slabs of 4 sections, flipped and repeated to the shape."""
    z, y, x = shape
    slab, _ = make_demo_volume((4, y, x), seed=seed)
    reps = [slab if i % 2 == 0 else slab[:, ::-1] for i in range(math.ceil(z / 4))]
    vol = np.ascontiguousarray(np.concatenate(reps)[:z])
    tifffile.imwrite(path, vol, imagej=True, resolution=(1 / 18.4, 1 / 18.4),
                     metadata={"spacing": 50.0, "unit": "nm", "axes": "ZYX"})
    return vol


def raw_forward(model_path: Path, vol: np.ndarray, batch: int) -> float:
    """Seconds to restore every section of ``vol`` whole, in memory: the same
    :class:`~pssr_volume.predict.Predictor` the engine uses, without tiling, I/O or Dask."""
    info = model_info(model_path)
    torch.set_num_threads(os.cpu_count() or 1)
    predictor = Predictor(str(model_path))
    norm = info.config.normalization
    lo, hi = intensity_range(norm, sample_volume(lambda r: vol[r], vol.shape))
    g = info.grid
    pad = [(0, 0), (0, -vol.shape[1] % g), (0, -vol.shape[2] % g)]
    x = normalize(np.pad(vol, pad, mode="reflect"), lo, hi)[:, None]
    predictor(x[:1], batch)  # warm-up
    t0 = time.perf_counter()
    predictor(x, batch)
    return time.perf_counter() - t0


def peak_rss_kib() -> int:
    """Peak resident memory of this process's own address space (``VmHWM``), KiB.

    Not ``getrusage().ru_maxrss``: Linux carries the parent's peak into a child's
    ``ru_maxrss`` across fork and exec, so spawned Dask workers would report the
    benchmark process's own peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def end_to_end(model_path: Path, inp: Path, out: Path, workers: int, block: tuple[int, ...],
               batch: int) -> dict[str, float]:
    """Run the engine on a fresh local cluster; wall time and peak worker memory."""
    from dask.distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None,
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    threads = max(1, (os.cpu_count() or 1) // workers)
    client.run(lambda: __import__("pssr_volume.tasks") and None)  # warm the workers
    startup = time.perf_counter() - t0
    try:
        cfg = RunConfig(input=inp, output=out, model=model_path, cluster=cluster.scheduler_address,
                        block_shape=block, batch_size=batch, progress=False)
        # the tcp path leaves torch threads alone; match what --cluster local sets
        client.run(lambda: __import__("torch").set_num_threads(threads))
        t1 = time.perf_counter()
        stats = run(cfg)
        wall = time.perf_counter() - t1
        rss = client.run(peak_rss_kib)
    finally:
        client.close()
        cluster.close()
    return {"seconds": wall, "startup_seconds": startup, "blocks": stats.blocks_done,
            "peak_worker_rss_mib": max(rss.values()) / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="8,512,512", help="input (LR) shape Z,Y,X of the base volume")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--block-shape", default=None, help="default: the engine's default block")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    if args.block_shape is None:
        block = (DEFAULT_BLOCK_Z, DEFAULT_BLOCK_YX, DEFAULT_BLOCK_YX)
    else:
        block = tuple(int(v) for v in args.block_shape.split(","))
    model = args.model or bundled_model_path()
    info = model_info(model)
    s = info.config.scale
    results = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "model": info.config.name, "architecture": info.config.architecture,
               "halo": list(info.default_halo), "block_shape": list(block),
               "workers": args.workers, "batch_size": args.batch_size, "volumes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for factor in (1, 4):
            vshape = (shape[0] * factor, shape[1], shape[2])
            inp = Path(tmp) / f"in{factor}.tif"
            vol = make_input(inp, vshape, seed=factor)
            out_mpx = vshape[0] * vshape[1] * vshape[2] * s * s / 1e6
            raw = raw_forward(model, vol, args.batch_size)
            e2e = end_to_end(model, inp, Path(tmp) / f"out{factor}.ome.zarr", args.workers,
                             block, args.batch_size)
            row = {"input_shape": list(vshape), "output_mpx": round(out_mpx, 1),
                   "raw_forward_mpx_s": round(out_mpx / raw, 3),
                   "end_to_end_mpx_s": round(out_mpx / e2e["seconds"], 3),
                   "ratio": round(raw / e2e["seconds"], 3),
                   "end_to_end_seconds": round(e2e["seconds"], 1),
                   "cluster_startup_seconds": round(e2e["startup_seconds"], 1),
                   "blocks": e2e["blocks"],
                   "peak_worker_rss_mib": round(e2e["peak_worker_rss_mib"])}
            results["volumes"].append(row)
            print(json.dumps(row))
    a, b = results["volumes"]
    results["memory_ratio_4x"] = round(b["peak_worker_rss_mib"] / a["peak_worker_rss_mib"], 3)
    halo_y = info.default_halo[0]
    core = block[1] // s
    results["halo_compute_factor"] = round(((core + 2 * halo_y) / core) ** 2, 3)
    print(f"\nmodel {info.config.name} ({info.config.architecture}), block "
          f"{','.join(map(str, block))}, halo {halo_y} px, {args.workers} workers, "
          f"{os.cpu_count()} cores")
    print(f"{'input':>14} {'raw Mpx/s':>10} {'run Mpx/s':>10} {'ratio':>6} {'peak RSS MiB':>13}")
    for r in results["volumes"]:
        print(f"{'x'.join(map(str, r['input_shape'])):>14} {r['raw_forward_mpx_s']:>10.3f} "
              f"{r['end_to_end_mpx_s']:>10.3f} {r['ratio']:>6.2f} {r['peak_worker_rss_mib']:>13}")
    print(f"memory ratio (4x volume / volume): {results['memory_ratio_4x']:.3f}; "
          f"halo compute factor of the block: {results['halo_compute_factor']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
