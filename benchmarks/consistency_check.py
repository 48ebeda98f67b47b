"""Does the data-consistency figure (pssr_volume.consistency) separate a model that fits its
input from one that does not?

    python benchmarks/consistency_check.py calibrate [--write]
    python benchmarks/consistency_check.py show

``calibrate`` runs each bundled model through ``pssr-volume run`` on validation data
(never a hold-out): the SBEM validation run (z 50-59, a file no training reads) for
``pssr-em-x4`` and, for the iso model (isotropic data only: SBEM sections are 40 nm apart),
the last sections of its FIB-SEM training samples (its validation split), each degraded x4
with the three degradations of docs/RESULTS.md. The highest figure is what the model "showed
on its validation data"; ``--write`` records it in the model file's header
(``metrics.consistency.max_ratio``; the tensors are unchanged), where ``run`` reads it.

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

from pssr_volume.bundled import bundled_model_path
from pssr_volume.config import RunConfig
from pssr_volume.consistency import misfit_limit
from pssr_volume.crappify.presets import get_preset
from pssr_volume.intensity import GreyMap
from pssr_volume.io.inputs import open_input
from pssr_volume.io.ome_zarr import read_provenance
from pssr_volume.model import load_model, save_model
from pssr_volume.model_header import read_config
from pssr_volume.run import run, validation_ratio

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
           force: bool = False) -> tuple[float, bool]:
    """``pssr-volume run`` on ``lr``: its consistency ratio, and whether it warned."""
    inp = work / "lr.tif"
    tifffile.imwrite(inp, lr, imagej=True, resolution=(1 / voxel[2], 1 / voxel[1]),
                     metadata={"spacing": voxel[0], "unit": "nm", "axes": "ZYX"})
    lines: list[str] = []
    out = work / "out.ome.zarr"
    run(RunConfig(input=str(inp), output=str(out), model=model, cluster="sync", progress=False,
                  overwrite=True, force=force), log=lines.append)
    ratio = float((read_provenance(out) or {})["consistency"]["ratio"])
    return ratio, any("may not fit this data" in line for line in lines)


def calibrate(write: bool) -> str:
    rows = ["| model | validation data | degradation | ratio |", "|---|---|---|---|"]
    cases = {"pssr-em-x4": [SBEM_VAL], "pssr-em-x4-iso": [FIB_VAL]}  # iso: isotropic data
    for name, sources in cases.items():
        worst = 0.0
        for src in sources:
            for preset in PRESETS:
                with tempfile.TemporaryDirectory() as tmp:
                    ratio, _ = figure(degrade(src, preset), (src[3], 4 * src[2], 4 * src[2]),
                                      name, Path(tmp), force=True)
                worst = max(worst, ratio)
                rows.append(f"| `{name}` | {src[0]} z {src[1][0]}-{src[1][1] - 1} | {preset} | "
                            f"{ratio:.3f} |")
                print(rows[-1], flush=True)
        rows.append(f"| `{name}` | **highest** | | **{worst:.3f}** (warns above "
                    f"{misfit_limit(worst):.2f}) |")
        if write:
            path = bundled_model_path(name)
            cfg, module = load_model(path)
            metrics = {**cfg.metrics, "consistency": {
                "max_ratio": round(worst, 4),
                "measured_by": "python benchmarks/consistency_check.py calibrate --write"}}
            save_model(path, module, cfg.model_copy(update={"metrics": metrics}))
    return "\n".join(rows) + "\n"


def show() -> str:
    rows = ["| case | input | model | ratio | limit | warned | should warn |",
            "|---|---|---|---|---|---|---|"]
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
         degrade(VNC_HOLD, "pssr-em", scale=8), vnc_voxel, "pssr-em-x4"),
        ("wrong voxel size", "VNC hold-out 4.6 nm itself, declared 18.4 nm",
         degrade(VNC_HOLD, "none")[:, :160, :160], vnc_voxel, "pssr-em-x4"),
    ]
    for kind, what, lr, voxel, model in cases:
        with tempfile.TemporaryDirectory() as tmp:
            ratio, warned = figure(lr, voxel, model, Path(tmp), force=True)
        limit = misfit_limit(validation_ratio(read_config(bundled_model_path(model))))
        rows.append(f"| {kind} | {what} | `{model}` | {ratio:.3f} | {limit:.2f} | "
                    f"{'yes' if warned else 'no'} | {'no' if kind == 'fit' else 'yes'} |")
        print(rows[-1], flush=True)
    return "\n".join(rows) + "\n"


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
