"""Restore an undersampled EM volume, then segment the OME-Zarr output with scikit-image.

Shows how ``pssr-volume``'s output feeds an analysis pipeline: the restored level 0 is opened
with :func:`pssr_volume.open_ome_zarr` as a lazy xarray.DataArray (coordinates in nm), each
section goes through a classic membrane + watershed segmentation, and the result is compared
with the same segmentation of a bicubic upsampling of the input, both scored against the
segmentation of the real high-resolution sections (adapted Rand error, variation of
information: lower is better).

The data: the last sections of the Drosophila VNC ssTEM stack 1 (4.6 nm pixels) from
../shared/data (the part of that training stack held back for validation), or any
high-resolution stack given with ``--hr`` (docs/RESULTS.md uses the hold-out stack 2), degraded
x4 with the PSSR EM crappifier; without ../shared, the synthetic EM-like demo volume of
``pssr-volume demo``. Run it from the repository root::

    python examples/restore_and_segment.py                       # the bundled EM model
    python examples/restore_and_segment.py --model my.safetensors --out work/
    python examples/restore_and_segment.py \
        --hr ../shared/data/holdout_drosophila_vnc_sstem_stack2/raw --json seg.json

``--json`` also writes the scores (means and per section) as JSON: docs/results.sh's
segmentation stage, read by docs/make_results.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage
from skimage import filters, measure, segmentation
from skimage.metrics import adapted_rand_error, variation_of_information
from skimage.transform import resize

import pssr_volume
from pssr_volume.bundled import DEFAULT_MODEL, resolve_model
from pssr_volume.config import RunConfig
from pssr_volume.crappify.presets import get_preset
from pssr_volume.demo import make_demo_volume
from pssr_volume.errors import PssrError
from pssr_volume.run import run

SCALE = 4
STACK1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "drosophila_vnc_sstem_stack1"


def load_pair(side: int = 384, sections: int = 3, source: Path | None = None
              ) -> tuple[np.ndarray, np.ndarray, str]:
    """A high-resolution (4.6 nm) stack and its x4-undersampled version (18.4 nm), uint8."""
    folder = source or STACK1 / "raw"
    files = sorted(folder.glob("*.tif")) if folder.is_dir() else [folder] if folder.is_file() \
        else []
    if files:
        stack = (np.stack([tifffile.imread(f) for f in files[-sections:]]) if len(files) > 1
                 else tifffile.imread(files[0])[-sections:])
        y0, x0 = ((n - side) // 2 for n in stack.shape[1:])
        hr = stack[:, y0:y0 + side, x0:x0 + side]
        crappify, rng = get_preset("pssr-em", SCALE), np.random.default_rng(0)
        lr = np.stack([np.clip(np.rint(crappify(s.astype(np.float32) / 255, rng) * 255), 0, 255)
                       for s in hr]).astype(np.uint8)
        name = folder.parent.name if folder.name == "raw" else folder.name
        return lr, hr, f"{name}, last {sections} sections, {side}x{side} px crop"
    lr, hr = make_demo_volume((sections, side // SCALE, side // SCALE), seed=1)
    return lr, hr, "synthetic demo volume (../shared/data not found)"


def segment(section: np.ndarray, sigma: float = 1.5, core: float = 6.0) -> np.ndarray:
    """Neurite profiles of one 4.6 nm section: dark membranes, watershed from cell cores.

    Parameters
    ----------
    section : numpy.ndarray
        2-D grey values, membranes dark.
    sigma : float
        Gaussian smoothing, pixels.
    core : float
        Pixels from the nearest membrane that make a watershed seed.
    """
    smooth = filters.gaussian(section.astype(np.float32), sigma)
    membrane = smooth < filters.threshold_otsu(smooth)
    parts, n = ndimage.label(membrane)
    sizes = np.bincount(parts.ravel(), minlength=n + 1)
    membrane &= sizes[parts] >= 64  # drop vesicles and specks
    distance = ndimage.distance_transform_edt(~membrane)
    seeds = measure.label(distance > core)
    return segmentation.watershed(-smooth, seeds)


def scores(truth: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Adapted Rand error and variation of information (split + merge) against `truth`."""
    are = adapted_rand_error(truth, labels)[0]
    split, merge = variation_of_information(truth, labels)
    return float(are), float(split + merge)


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="a bundled model's name or a model file (default: %(default)s)")
    parser.add_argument("--hr", type=Path, default=None,
                        help="high-resolution stack: a folder of TIFF sections or a TIFF "
                             "(default: VNC stack 1 from ../shared/data)")
    parser.add_argument("--sections", type=int, default=3)
    parser.add_argument("--side", type=int, default=384, help="HR crop edge, pixels")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for lr.tif and restored.ome.zarr (default: a temp folder)")
    parser.add_argument("--cluster", default="sync", help="as pssr-volume run --cluster")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the scores (means and per section) to this JSON file")
    args = parser.parse_args(argv)
    try:
        model = resolve_model(args.model)
    except PssrError as e:
        sys.exit(str(e))

    lr, hr, what = load_pair(args.side, args.sections, args.hr)
    print(f"data: {what}; input {lr.shape} at 18.4 nm, truth {hr.shape} at 4.6 nm")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        lr_path = work / "lr.tif"
        tifffile.imwrite(lr_path, lr, imagej=True, resolution=(1 / 18.4, 1 / 18.4),
                         metadata={"spacing": 50.0, "unit": "nm", "axes": "ZYX"})
        out = work / "restored.ome.zarr"

        # 1. restore: the same as `pssr-volume run lr.tif restored.ome.zarr --model ...`
        run(RunConfig(input=lr_path, output=out, model=model, cluster=args.cluster,
                      overwrite=True, progress=False))

        # 2. hand the OME-Zarr to the pipeline: lazy, with physical coordinates
        restored = pssr_volume.open_ome_zarr(out)  # level 0, dims (z, y, x), nm
        step = float(restored.x[1] - restored.x[0])
        model_name = restored.attrs["pssr_volume"]["model"]["name"]
        print(f"restored: {dict(restored.sizes)}, pixel {step:.2f} nm, model {model_name}")
        bicubic = np.stack([
            np.clip(resize(s.astype(np.float32), restored.shape[1:], order=3), 0, 255)
            for s in lr])

        # 3. segment every section three ways and score against the real 4.6 nm data
        results: dict[str, list[tuple[float, float]]] = {"pssr-volume": [], "bicubic": []}
        for z in range(restored.sizes["z"]):
            truth = segment(hr[z])
            section = restored.isel(z=z).values  # reads just this section's chunks
            results["pssr-volume"].append(scores(truth, segment(section)))
            results["bicubic"].append(scores(truth, segment(bicubic[z])))
    summary = {k: tuple(float(v) for v in np.mean(r, axis=0)) for k, r in results.items()}
    print("segmentation vs the 4.6 nm truth (mean over sections; lower is better)")
    print(f"  {'input upsampling':<16} {'adapted Rand error':>19} {'VI (split+merge)':>17}")
    for name, (are, vi) in summary.items():
        print(f"  {name:<16} {are:>19.3f} {vi:>17.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "data": what, "hr": str(args.hr) if args.hr else None, "sections": len(hr),
            "side": args.side, "preset": "pssr-em", "scale": SCALE, "model": model_name,
            "model_file": str(model), "lower_is_better": ["adapted_rand_error", "vi"],
            "methods": {k: {"adapted_rand_error": summary[k][0], "vi": summary[k][1],
                            "sections": [{"adapted_rand_error": a, "vi": v} for a, v in r]}
                        for k, r in results.items()}}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return summary


if __name__ == "__main__":
    main()
