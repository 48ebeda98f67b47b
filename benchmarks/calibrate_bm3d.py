"""Calibrate the BM3D baseline's sigma on TRAINING data (never on a hold-out).

The noise estimate of a sharp, undersampled EM section (``noise.estimate_noise``) also counts
fine texture as noise, so BM3D given it smooths too much. The baseline therefore uses
``factor x`` the estimate; this script measures which factor restores best (CARE-normalised
PSNR of BM3D + bicubic against the HR) on crops of a training volume degraded with each
preset, and prints the mean per factor.

    python benchmarks/calibrate_bm3d.py --hr ../shared/data/drosophila_vnc_sstem_stack1/raw
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pssr_volume.baselines import bm3d_sigma, upsample
from pssr_volume.crappify.presets import get_preset
from pssr_volume.io.inputs import open_input
from pssr_volume.metrics import volume_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hr", type=Path, required=True)
    p.add_argument("--sections", default="0:3")
    p.add_argument("--crop", type=int, default=512)
    p.add_argument("--factors", default="0.15,0.25,0.35,0.5,0.7,1.0")
    args = p.parse_args()
    import bm3d

    vol = open_input(args.hr)
    z0, z1 = (int(v) for v in args.sections.split(":"))
    y0, x0 = ((n - args.crop) // 2 // 4 * 4 for n in vol.shape[1:])
    hr = vol.read((slice(z0, z1), slice(y0, y0 + args.crop), slice(x0, x0 + args.crop)))
    factors = [float(f) for f in args.factors.split(",")]
    table: dict[float, list[float]] = {f: [] for f in factors}
    for preset in ("pssr-em", "pssr2", "integrate-read"):
        pipe = get_preset(preset, 4)
        lr = np.stack([np.clip(np.rint(pipe(s.astype(np.float32) / 255,
                                            np.random.default_rng([0, k])) * 255), 0, 255)
                       for k, s in enumerate(hr)]).astype(np.uint8)
        sigma = bm3d_sigma(lr)["estimate"]
        base = volume_metrics(np.clip(np.rint(upsample(lr, 4, "bicubic")), 0, 255)
                              .astype(np.uint8), hr)["psnr"]
        for f in factors:
            den = np.stack([bm3d.bm3d(s.astype(np.float64), sigma_psd=f * sigma) for s in lr])
            up = np.clip(np.rint(upsample(den, 4, "bicubic")), 0, 255).astype(np.uint8)
            gain = volume_metrics(up, hr)["psnr"] - base
            table[f].append(gain)
            print(f"{preset:>15} estimate {sigma:5.1f}  factor {f:4.2f}: {gain:+.3f} dB",
                  flush=True)
    for f in factors:
        print(f"factor {f:4.2f}: mean gain over bicubic {np.mean(table[f]):+.3f} dB")


if __name__ == "__main__":
    main()
