"""Do the data-consistency figure (pssr_volume.consistency) and the scale check
(pssr_volume.cross_scale) separate a model that fits its input from one that does not?

    python benchmarks/consistency_check.py calibrate [--write]
    python benchmarks/consistency_check.py show

``calibrate`` runs each bundled model through ``pssr-volume run`` on validation data
(never a hold-out): the SBEM validation run (z 50-59, a file no training reads) for
``pssr-em-x4`` and, for the iso model (isotropic data only: SBEM sections are 40 nm apart),
the last sections of its FIB-SEM training samples (its validation split), each degraded x4
with the three degradations of docs/RESULTS.md. The highest figure is what the model "showed
on its validation data"; ``--write`` records it in the model file's header
(``metrics.consistency.max_ratio``, and the scale check's ``max_cross_scale_gain_db``; the
tensors are unchanged), where ``run`` reads them.

``show`` uses the hold-outs: fitting cases (the right model on data degraded as it expects)
and misfits (the wrong model; a wrong voxel size: data 8x coarser, or the high-resolution
data itself, declared at the model's input pixel size) and prints which ones the run warned
about. Writes benchmarks/results/consistency-{calibrate,show}.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
import zarr

from pssr_volume.baselines import upsample
from pssr_volume.bundled import bundled_model_path
from pssr_volume.config import RunConfig
from pssr_volume.consistency import misfit_limit
from pssr_volume.crappify.presets import get_preset
from pssr_volume.cross_scale import gain_limit
from pssr_volume.intensity import GreyMap
from pssr_volume.io.inputs import open_input
from pssr_volume.io.ome_zarr import read_provenance
from pssr_volume.metrics import section_metrics
from pssr_volume.model import load_model, save_model
from pssr_volume.model_header import read_config
from pssr_volume.run import run, validation_gain, validation_ratio

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
PRESETS = ("pssr-em", "pssr2", "integrate-read")
SBEM_VAL = ("sbem_cdeep3m_mito_testsample/validation_z050-059.tif", (0, 4), 5.9, 40.0)
FIB_VAL = ("flyem_medulla_fibsem_10nm/training_sample2.tif", (230, 238), 10.0, 10.0)
VNC_HOLD = ("holdout_drosophila_vnc_sstem_stack2/raw", (0, 4), 4.6, 50.0)
FIB_HOLD = ("holdout_flyem_medulla_fibsem_10nm_validation/validation_sample_z196-323.tif",
            (0, 8), 10.0, 10.0)


def degrade(source: tuple, preset: str, scale: int = 4, size: int = 512) -> np.ndarray:
    """Sections ``z0:z1`` of a high-resolution volume (a ``size`` square), degraded."""
    path, (z0, z1), _, _ = source
    vol = open_input(str(DATA / path))
    size = min(size, vol.shape[1] // scale * scale, vol.shape[2] // scale * scale)
    hr = vol.read((slice(z0, z1), slice(0, size), slice(0, size)))
    if preset == "none":
        return hr
    grey = GreyMap.for_volume(vol.dtype, vol.read, vol.shape)
    pipe = get_preset(preset, scale)
    return np.stack([grey.from_unit(pipe(grey.to_unit(s), np.random.default_rng([7, z])))
                     for z, s in enumerate(hr)])


def figure(lr: np.ndarray, voxel: tuple[float, float, float], model: str, work: Path,
           force: bool = False) -> tuple[float, float | None, bool]:
    """``pssr-volume run`` on ``lr``: its consistency ratio, its scale-check figure (dB; None
    for an input too small to check), and whether it warned that the model may not fit."""
    inp = work / "lr.tif"
    tifffile.imwrite(inp, lr, imagej=True, resolution=(1 / voxel[2], 1 / voxel[1]),
                     metadata={"spacing": voxel[0], "unit": "nm", "axes": "ZYX"})
    lines: list[str] = []
    out = work / "out.ome.zarr"
    run(RunConfig(input=str(inp), output=str(out), model=model, cluster="sync", progress=False,
                  overwrite=True, force=force), log=lines.append)
    provenance = read_provenance(out) or {}
    ratio = float(provenance["consistency"]["ratio"])
    gain = (provenance.get("scale_check") or {}).get("cross_scale_gain_db")
    return ratio, gain, any("may not fit this data" in line for line in lines)


def _db(gain: float | None) -> str:
    return "(input too small)" if gain is None else f"{gain:+.3f}"


def calibrate(write: bool) -> str:
    rows = ["| model | validation data | degradation | ratio | scale check (dB) |",
            "|---|---|---|---|---|"]
    cases = {"pssr-em-x4": [SBEM_VAL], "pssr-em-x4-iso": [FIB_VAL]}  # iso: isotropic data
    for name, sources in cases.items():
        worst, worst_gain = 0.0, -np.inf
        for src in sources:
            for preset in PRESETS:
                with tempfile.TemporaryDirectory() as tmp:
                    ratio, gain, _ = figure(degrade(src, preset),
                                            (src[3], 4 * src[2], 4 * src[2]), name, Path(tmp),
                                            force=True)
                worst = max(worst, ratio)
                worst_gain = worst_gain if gain is None else max(worst_gain, gain)
                rows.append(f"| `{name}` | {src[0]} z {src[1][0]}-{src[1][1] - 1} | {preset} | "
                            f"{ratio:.3f} | {_db(gain)} |")
                print(rows[-1], flush=True)
        seen = worst_gain if np.isfinite(worst_gain) else None
        rows.append(f"| `{name}` | **highest** | | **{worst:.3f}** (warns above "
                    f"{misfit_limit(worst):.2f}) | **{_db(seen)}** (warns above "
                    f"{gain_limit(seen):+.2f}) |")
        if write:
            path = bundled_model_path(name)
            cfg, module = load_model(path)
            metrics = {**cfg.metrics, "consistency": {
                "max_ratio": round(worst, 4),
                **({} if seen is None else {"max_cross_scale_gain_db": round(seen, 4)}),
                "measured_by": "python benchmarks/consistency_check.py calibrate --write"}}
            save_model(path, module, cfg.model_copy(update={"metrics": metrics}))
    return "\n".join(rows) + "\n"


def show() -> str:
    rows = ["| case | input | model | ratio | limit | scale check (dB) | limit | warned | "
            "should warn |", "|---|---|---|---|---|---|---|---|---|"]
    vnc_voxel = (50.0, 18.4, 18.4)  # the hold-out's LR voxel: 4.6 nm x 4
    cases = [
        ("fit", "VNC hold-out, pssr-em", degrade(VNC_HOLD, "pssr-em"), vnc_voxel, "pssr-em-x4"),
        ("fit", "VNC hold-out, pssr2", degrade(VNC_HOLD, "pssr2"), vnc_voxel, "pssr-em-x4"),
        ("fit", "VNC hold-out, integrate-read", degrade(VNC_HOLD, "integrate-read"), vnc_voxel,
         "pssr-em-x4"),
        ("fit", "FIB hold-out, pssr-em", degrade(FIB_HOLD, "pssr-em"), (10.0, 40.0, 40.0),
         "pssr-em-x4-iso"),
        ("fit", "FIB hold-out, integrate-read", degrade(FIB_HOLD, "integrate-read"),
         (10.0, 40.0, 40.0), "pssr-em-x4-iso"),
        ("wrong model", "VNC hold-out, pssr-em (sections 50 nm apart)",
         degrade(VNC_HOLD, "pssr-em"), vnc_voxel, "pssr-em-x4-iso"),
        ("wrong model", "VNC hold-out, integrate-read", degrade(VNC_HOLD, "integrate-read"),
         vnc_voxel, "pssr-em-x4-iso"),
        ("wrong voxel size", "VNC hold-out degraded x8, declared 18.4 nm",
         degrade(VNC_HOLD, "pssr-em", scale=8, size=1024), vnc_voxel, "pssr-em-x4"),
        ("wrong voxel size", "VNC hold-out 4.6 nm itself, declared 18.4 nm",
         degrade(VNC_HOLD, "none")[:, :256, :256], vnc_voxel, "pssr-em-x4"),
        ("wrong voxel size", "FIB hold-out 10 nm itself, declared 40 nm",
         degrade(FIB_HOLD, "none")[:, :256, :256], (40.0, 40.0, 40.0), "pssr-em-x4"),
    ]
    for kind, what, lr, voxel, model in cases:
        with tempfile.TemporaryDirectory() as tmp:
            ratio, gain, warned = figure(lr, voxel, model, Path(tmp), force=True)
        config = read_config(bundled_model_path(model))
        limit = misfit_limit(validation_ratio(config))
        rows.append(f"| {kind} | {what} | `{model}` | {ratio:.3f} | {limit:.2f} | {_db(gain)} | "
                    f"{gain_limit(validation_gain(config)):+.2f} | {'yes' if warned else 'no'} | "
                    f"{'no' if kind == 'fit' else 'yes'} |")
        print(rows[-1], flush=True)
    rows += ["", "The input 2x coarser than declared, restored by `pssr-em-x4` and scored against "
             "the truth at its own scale (the 4.6 nm sections averaged 2 x 2: 9.2 nm), gain "
             "over bicubic (PSNR dB / SSIM):", ""]
    rows += [f"- {preset}: {db:+.2f} / {ss:+.3f}" for preset, (db, ss) in coarser_quality()]
    return "\n".join(rows) + "\n"


def coarser_quality() -> list[tuple[str, tuple[float, float]]]:
    """How good the restoration of an input 2x coarser than the model expects is: the VNC
    hold-out (1024 px) degraded x8, restored x4, against its 2 x 2 means."""
    hr = degrade(VNC_HOLD, "none", size=1024).astype(np.float64)
    z, y, x = hr.shape
    truth = hr.reshape(z, y // 2, 2, x // 2, 2).mean(axis=(2, 4))
    out = []
    for preset in ("pssr-em", "integrate-read"):
        lr = degrade(VNC_HOLD, preset, scale=8, size=1024)
        with tempfile.TemporaryDirectory() as tmp:
            inp, restored = Path(tmp) / "lr.tif", Path(tmp) / "out.ome.zarr"
            tifffile.imwrite(inp, lr, imagej=True, metadata={"axes": "ZYX"})
            run(RunConfig(input=str(inp), output=str(restored), model="pssr-em-x4",
                          cluster="sync", progress=False))
            sr = np.asarray(zarr.open_group(str(restored), mode="r")["0"])
        bicubic = upsample(lr, 4, "bicubic")
        gains = []
        for s, b, t in zip(sr, bicubic, truth, strict=True):
            m_s, m_b = section_metrics(s, t, 255), section_metrics(b, t, 255)
            gains.append((m_s["psnr"] - m_b["psnr"], m_s["ssim"] - m_b["ssim"]))
        out.append((preset, tuple(float(v) for v in np.mean(gains, axis=0))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=["calibrate", "show"])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    table = calibrate(args.write) if args.stage == "calibrate" else show()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"consistency-{args.stage}.md").write_text(
        f"`python benchmarks/consistency_check.py {' '.join(sys.argv[1:])}`\n\n{table}")
    print(table)


if __name__ == "__main__":
    main()
