"""``pssr-volume evaluate``: the evaluation protocol of docs/DESIGN.md section 5.

Two kinds of cases:

* **crappified HR** (semi-synthetic): each ``--hr`` volume is degraded with each
  ``--preset`` (section ``z`` with ``numpy.random.default_rng([seed, z])``, as
  ``pssr-volume crappify`` does), written as an LR TIFF and restored;
* **real pairs**: ``--lr`` and ``--hr`` volumes of the same region, the HR ``scale``
  times finer in y and x (same sections).

Each model restores the LR volume *through the engine* (:func:`pssr_volume.run.run`,
in-process ``sync`` cluster by default), so the numbers include blockwise inference,
halos and the engine's intensity normalisation, and the run's output megapixels per
second are reported. Baselines, on the same LR volume, per section
(:mod:`pssr_volume.baselines`): bilinear, bicubic (Keys, a = -0.75), spline3 (PSSR's
"bicubic": cubic B-spline) and BM3D + bicubic (``--no-bm3d`` leaves it out).

Every method is rounded to the input's dtype like the engine's output, then scored with
:mod:`pssr_volume.metrics`: CARE-normalised PSNR/SSIM (data range 1), NRMSE, raw PSNR
(8-bit scale), z-consistency, and the Fourier ring correlation with the HR
(:mod:`pssr_volume.frc`). Outputs in ``--out``: ``results.json`` (everything,
per section too), ``results.md`` (one table per case), ``evaluate.json`` (the settings),
``montage_<case>.png`` (LR, baselines, models, HR and error maps of the middle section)
and ``cases/<case>/`` (the LR input and each model's OME-Zarr output).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pssr_volume.baselines import (
    BASELINES,
    BM3D_SIGMA_FACTOR,
    bm3d_then_upsample,
    to_dtype,
    upsample,
)
from pssr_volume.config import EvaluateConfig, RunConfig
from pssr_volume.crappify.presets import get_preset
from pssr_volume.device import choose_device
from pssr_volume.errors import PssrError
from pssr_volume.evaluate_cases import check_evaluation, evaluation_cases, hr_region, safe_name
from pssr_volume.evaluate_report import montage, write_results
from pssr_volume.frc import frc_resolution
from pssr_volume.intensity import GreyMap
from pssr_volume.io.inputs import open_input
from pssr_volume.io.ome_zarr import read_provenance
from pssr_volume.io.tiff import write_tiff_stack
from pssr_volume.metrics import raw_range, volume_metrics
from pssr_volume.model import ModelInfo, model_info


def _model_names(infos: list[ModelInfo]) -> list[str]:
    names = [i.config.name for i in infos]
    return [n if names.count(n) == 1 else f"{n} ({Path(i.path).stem})"
            for n, i in zip(names, infos)]


def restore(cfg: EvaluateConfig, lr_path: Path, model: ModelInfo, output: Path
            ) -> tuple[np.ndarray, dict[str, Any]]:
    """Restore an LR volume through the engine; returns level 0 and timing."""
    from pssr_volume.run import run

    if output.exists():
        shutil.rmtree(output)
    device = choose_device(cfg.device, cfg.cluster) if cfg.cluster == "sync" else cfg.device
    rc = RunConfig(input=lr_path, output=output, model=Path(model.path), cluster=cfg.cluster,
                   workers=cfg.workers, device=device, batch_size=cfg.batch_size,
                   block_shape=cfg.block_shape, halo=cfg.halo, progress=False)
    t0 = time.perf_counter()
    try:
        stats = run(rc)
    except PssrError as e:  # evaluate has no --resume: say what failed and how to redo it
        raise type(e)(f"evaluate: restoring {lr_path} with model {model.path} failed: "
                      f"{without_resume_hint(str(e))}; rerun evaluate (with --overwrite if "
                      f"{cfg.out} already holds results.json)") from e
    wall = time.perf_counter() - t0
    vol = open_input(output)
    pred = vol.read((slice(None), slice(None), slice(None)))
    settings = (read_provenance(output) or {}).get("settings", {})
    return pred, {"seconds": round(stats.seconds, 3), "wall_seconds": round(wall, 3),
                  "out_mpx_per_s": round(stats.mvoxels_per_second, 4),
                  "blocks": stats.blocks_done, "block_shape": settings.get("block_shape"),
                  "halo": settings.get("halo"), "device": settings.get("device")}


_RESUME_HINTS = (
    re.compile(r"\s*\(\d+ of \d+ blocks are done and kept; rerun with --resume\)"),
    re.compile(r"[:;,]?\s*\(?(finished blocks are kept; )?rerun with --resume\)?"),
    re.compile(r"\s*\(use --resume[^)]*\)"),
)


def without_resume_hint(message: str) -> str:
    """`message` of a ``run`` error without its advice to rerun with ``--resume``, an
    option ``evaluate`` does not have (it restores into a fresh output every time)."""
    for pattern in _RESUME_HINTS:
        message = pattern.sub("", message)
    return message.strip()


def _load_case(cfg: EvaluateConfig, case: dict[str, Any], scale: int, folder: Path
               ) -> tuple[np.ndarray, np.ndarray, Path, dict[str, Any]]:
    """HR region, LR volume (read or made), the LR file the engine reads, and details."""
    hr_vol = case["hr_vol"]
    if case["lr"] is None:
        region = hr_region(hr_vol.shape, scale, cfg.z, cfg.crop)
        hr = hr_vol.read(region)
        pipeline = get_preset(case["preset"], scale)
        grey = GreyMap.for_volume(hr_vol.dtype, hr_vol.read, hr_vol.shape)
        lr = np.stack([grey.from_unit(pipeline(grey.to_unit(s), np.random.default_rng(
            [cfg.seed, region[0].start + k]))) for k, s in enumerate(hr)])
        v = hr_vol.voxel_size
        voxel = None if v is None else (v[0], v[1] * scale, v[2] * scale)
        details = {"pipeline": pipeline.to_dict(), "seed": cfg.seed}
    else:
        lr_vol = case["lr_vol"]
        region = hr_region(hr_vol.shape, scale, cfg.z, cfg.crop)
        hr = hr_vol.read(region)
        lr_ys, lr_xs = (slice(r.start // scale, r.stop // scale) for r in region[1:])
        lr = lr_vol.read((region[0], lr_ys, lr_xs))
        voxel, details = lr_vol.voxel_size, {}
    folder.mkdir(parents=True, exist_ok=True)
    lr_path = folder / "lr.tif"
    if lr_path.exists():
        lr_path.unlink()
    write_tiff_stack(lr_path, iter(lr), lr.shape, lr.dtype.name, voxel)
    details["region_hr"] = [[r.start, r.stop] for r in region]
    return hr, lr, lr_path, details


def evaluate(cfg: EvaluateConfig, log: Callable[[str], None] = lambda s: None
             ) -> dict[str, Any]:
    """Run the protocol; write ``results.json``, ``results.md``, montages; return results.

    Every input, model and the ``--out`` folder are checked before anything is written.
    """
    out = cfg.out
    models = check_evaluation(cfg)
    if not models:
        log("note: no --model and no bundled model: baselines only")
    infos = [model_info(m) for m in models]
    names = _model_names(infos)
    cases = evaluation_cases(cfg)  # every input opened and checked (again)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluate.json").write_text(cfg.model_dump_json(indent=2))
    results: dict[str, Any] = {
        "config": json.loads(cfg.model_dump_json()),
        "baselines": {
            "bilinear": "torch interpolate bilinear, align_corners=False",
            "bicubic": "torch interpolate bicubic (Keys cubic convolution, a=-0.75), "
                       "align_corners=False",
            "spline3": "scipy.ndimage.zoom order 3 (cubic B-spline), grid_mode=True, reflect",
            **({"bm3d+bicubic": "bm3d.bm3d per LR section (sigma: "
                                f"{BM3D_SIGMA_FACTOR:g} x the input's estimated noise at its "
                                "median intensity), then bicubic"}
               if cfg.bm3d else {}),
        },
        "frc": "Fourier ring correlation with the HR, averaged over sections (Hann window); "
               "frc_cycles_per_px: where it first falls below 0.5; frc_period_nm: 1 / that, "
               "in nm",
        "models": {n: {"path": i.path, "sha256": i.sha256, "architecture":
                       i.config.architecture, "in_slices": i.config.in_slices}
                   for n, i in zip(names, infos)},
        "cases": [],
    }
    for case in cases:
        name = case["name"]
        folder = out / "cases" / name
        hr, lr, lr_path, details = _load_case(cfg, case, cfg.scale, folder)
        log(f"{name}: HR {hr.shape}, LR {lr.shape}")
        rng = raw_range(hr.dtype, hr)
        preds = {b: to_dtype(upsample(lr, cfg.scale, b), hr.dtype) for b in BASELINES
                 if b != "bm3d+bicubic"}
        if cfg.bm3d:
            denoised, details["bm3d"] = bm3d_then_upsample(lr, cfg.scale)
            preds["bm3d+bicubic"] = to_dtype(denoised, hr.dtype)
        timing = {}
        for n, info in zip(names, infos):
            preds[n], timing[n] = restore(cfg, lr_path, info, folder / f"{safe_name(n)}.ome.zarr")
            log(f"{name}: {n} restored at {timing[n]['out_mpx_per_s']:.3f} output Mpx/s")
        pixel = None if case["hr_vol"].voxel_size is None else case["hr_vol"].voxel_size[2]
        scores = {m: {**volume_metrics(p, hr, rng), **frc_resolution(p, hr, pixel)}
                  for m, p in preds.items()}
        for method, s in scores.items():
            log(f"{name}: {method:>12} PSNR {s['psnr']:.2f} dB  SSIM {s['ssim']:.4f}  "
                f"FRC 0.5 at {s['frc_cycles_per_px']:.3f} cycles/px")
        entry = {"name": name, "hr": str(case["hr"]), "lr": str(case["lr"] or lr_path),
                 "preset": case["preset"], "hr_shape": list(hr.shape), "scale": cfg.scale,
                 "dtype": hr.dtype.name, **details, "methods": scores, "engine": timing}
        results["cases"].append(entry)
        if cfg.montage:
            montage(out / f"montage_{name}.png", lr, preds, hr, scores, cfg.scale,
                    title=name)
        write_results(out, results)
    return results
