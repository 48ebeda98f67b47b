"""The figures a GPU machine should give (issue 21 item 7), in one short run.

1. ``--cluster cuda`` end to end on a real volume: the bundled model restores the SBEM stack
   of ``../shared/data/sbem_cdeep3m_mito_testsample`` (its 20-section training file; not a
   hold-out) through ``pssr_volume.run.run``: wall seconds, output Mvoxel/s, the seconds before
   the first task's own work (``engine_seconds``: the engine's part, cluster start-up and
   planning excluded), and the stored level 0 against a CPU restoration of its
   first two sections (``--roi``; grey levels apart: float32 on both, or bf16 where the model
   allows it and the device has it).
2. The engine against the raw network: the same volume restored in memory section by section
   (the engine's :class:`~pssr_volume.predict.Predictor`, no tiling, I/O or Dask) against the
   engine's time after start-up: the run / raw ratio.
3. Precision: the network's output in float32, bf16 and fp16 autocast on a batch of tiles of
   that volume: the speed of each (output Mpx/s, median of five after a warm-up) and the
   largest and mean difference from float32 in grey levels.

Writes everything to ``--json`` (default ``benchmarks/results/gpu-figures.json``). On a CPU,
``--device cpu --quick`` runs the same steps on a few small sections (the dry run of
``benchmarks/gpu_check.sh``), so the script is checked where there is no GPU.

    python benchmarks/gpu_figures.py --device cuda
    python benchmarks/gpu_figures.py --device cpu --quick --json /tmp/gpu-figures-cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
import zarr

from pssr_volume.bundled import bundled_model_path
from pssr_volume.config import RunConfig
from pssr_volume.intensity import denormalize, normalize
from pssr_volume.noise import NoiseModel, network_input
from pssr_volume.predict import Predictor
from pssr_volume.run import plan_run, run

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOLUME = DATA / "sbem_cdeep3m_mito_testsample" / "training_z010-029.tif"
VOXEL = (40.0, 5.9, 5.9)  # z, y, x nm (the data README)


def _input(tmp: Path, quick: bool) -> tuple[Path, np.ndarray]:
    vol = tifffile.imread(VOLUME)
    if quick:
        vol = np.ascontiguousarray(vol[:4, :256, :256])
    path = tmp / "input.tif"
    tifffile.imwrite(path, vol, imagej=True)  # axes ZYX
    return path, vol


def end_to_end(inp: Path, out: Path, device: str, cluster: str) -> dict[str, Any]:
    config = RunConfig(input=inp, output=out, model=bundled_model_path(), cluster=cluster,
                       device=device, voxel_size=VOXEL, progress=False)
    t0 = time.perf_counter()
    stats = run(config)
    wall = time.perf_counter() - t0
    return {"cluster": cluster, "device": device, "seconds": round(wall, 2),
            "engine_seconds": round(stats.seconds, 2),
            "startup_seconds": round(stats.startup_seconds or 0.0, 2),
            "blocks": stats.blocks_total,
            "output_mvoxel_s": round(stats.voxels_written / 1e6 / wall, 1),
            "engine_output_mvoxel_s": round(  # the engine's part: start-up excluded
                stats.voxels_written / 1e6
                / max(1e-9, stats.seconds - (stats.startup_seconds or 0.0)), 1)}


def _tiles(x: np.ndarray, k: int, noise: tuple[float, float] | None) -> np.ndarray:
    """Normalised sections ``x`` as the network's input: ``k`` neighbours each, and the
    noise map of a noise-aware model (as the engine's tasks make them)."""
    tiles = np.lib.stride_tricks.sliding_window_view(x, k, axis=0)
    tiles = np.ascontiguousarray(np.moveaxis(tiles, -1, 1), dtype=np.float32)
    return tiles if noise is None else network_input(tiles, NoiseModel(*noise))


def raw_seconds(predictor: Predictor, vol: np.ndarray, norm: tuple[float, float],
                noise: tuple[float, float] | None, device: str, batch: int = 4) -> float:
    """Every section restored whole, in memory, in batches (its z context as the network
    takes it: the centre section of ``in_slices`` neighbours, edges reflected)."""
    k = predictor.config.in_slices
    x = normalize(np.pad(vol, ((k // 2, k // 2), (0, 0), (0, 0)), mode="reflect"), *norm)
    tiles = _tiles(x, k, noise)
    _sync(device)
    t0 = time.perf_counter()
    predictor(tiles, batch)
    _sync(device)
    return time.perf_counter() - t0


def precision(predictor: Predictor, vol: np.ndarray, norm: tuple[float, float],
              noise: tuple[float, float] | None, device: str, quick: bool) -> dict[str, Any]:
    k = predictor.config.in_slices
    edge = 128 if quick else 512
    lo, hi = norm
    x = _tiles(normalize(vol[:k, :edge, :edge], lo, hi), k, noise)
    x = x.repeat(2 if quick else 8, axis=0)
    tiles = torch.from_numpy(x).to(device)
    tiles = tiles.contiguous(memory_format=torch.channels_last)
    found: dict[str, Any] = {}
    reference = None
    for name, dtype in (("float32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        def forward(dtype: torch.dtype | None = dtype) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(
                    device_type="cuda" if device.startswith("cuda") else "cpu",
                    dtype=dtype or torch.float32, enabled=dtype is not None):
                return predictor.module(tiles)[:, 0].float()

        seconds = []
        for i in range(6):
            _sync(device)
            t0 = time.perf_counter()
            y = forward()
            _sync(device)
            if i:
                seconds.append(time.perf_counter() - t0)
        grey = denormalize(y.cpu().numpy(), lo, hi, "float32")
        if reference is None:
            reference = grey
        diff = np.abs(grey - reference)
        found[name] = {"output_mpx_s": round(y.numel() / 1e6 / statistics.median(seconds), 1),
                       "max_grey_levels_from_float32": round(float(diff.max()), 3),
                       "mean_grey_levels_from_float32": round(float(diff.mean()), 4)}
    return found


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--quick", action="store_true", help="a few small sections (CPU dry run)")
    p.add_argument("--json", type=Path,
                   default=Path(__file__).parent / "results" / "gpu-figures.json")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_figures.py: torch sees no CUDA GPU (use --device cpu --quick)")
    cluster = "cuda" if args.device == "cuda" else "local"
    results: dict[str, Any] = {
        "device": (torch.cuda.get_device_name(0) if args.device == "cuda"
                   else platform.processor() or platform.machine()),
        "torch": torch.__version__, "model": bundled_model_path().name,
        "volume": str(VOLUME.relative_to(DATA)), "quick": args.quick}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        inp, vol = _input(tmp, args.quick)
        results["input_shape"] = list(vol.shape)
        results["end_to_end"] = e2e = end_to_end(inp, tmp / "gpu.ome.zarr", args.device, cluster)
        job = plan_run(RunConfig(input=inp, output=tmp / "plan.ome.zarr",
                                 model=bundled_model_path(), cluster="sync",
                                 voxel_size=VOXEL)).job
        predictor = Predictor(str(bundled_model_path()), args.device)
        raw = raw_seconds(predictor, vol, job.norm, job.noise, args.device)
        engine = e2e["engine_seconds"] - e2e["startup_seconds"]
        results["run_over_raw"] = {"raw_seconds": round(raw, 2),
                                   "engine_seconds_after_startup": round(engine, 2),
                                   "ratio": round(engine / raw, 2)}
        results["precision"] = precision(predictor, vol, job.norm, job.noise, args.device,
                                         args.quick)
        # the first two sections on the CPU: a region of interest restores exactly what the
        # full run stores there
        roi = ((0, 2), (0, vol.shape[1]), (0, vol.shape[2]))
        run(RunConfig(input=inp, output=tmp / "cpu.ome.zarr", model=bundled_model_path(),
                      cluster="sync", device="cpu", voxel_size=VOXEL, roi=roi, progress=False))
        cpu = zarr.open_array(str(tmp / "cpu.ome.zarr" / "0"), mode="r")[...]
        gpu = zarr.open_array(str(tmp / "gpu.ome.zarr" / "0"), mode="r")[: cpu.shape[0]]
        apart = np.abs(cpu.astype(np.int32) - gpu.astype(np.int32))
        results["end_to_end"]["max_grey_levels_from_cpu_run"] = int(apart.max())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
