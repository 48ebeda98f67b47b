"""How much can any x4 restorer gain over bicubic on these degradations? Reference points.

On two training-validation sections of the ssTEM stack 1 (z 18-19, the training runs'
validation split; never a hold-out), CARE-normalised PSNR / SSIM of:

* bicubic upsampling of the degraded (noisy) LR, the baseline;
* bicubic upsampling of the *noise-free* LR (what a perfect denoiser followed by bicubic
  would reach: the part of the gap that is denoising);
* the HR section blurred with a Gaussian (oracles that know the HR; sigma 2 HR px is about
  the detail an x4 LR grid can carry).

    python docs/ceiling_probe.py   # needs ../shared/data; seconds
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import torch
import torch.nn.functional as F
from scipy import ndimage

from pssr_volume.crappify.pipeline import Pipeline
from pssr_volume.crappify.presets import get_preset
from pssr_volume.crappify.steps import Downsample
from pssr_volume.metrics import care_normalize, psnr, ssim

DATA = Path(__file__).resolve().parents[2] / "shared/data/drosophila_vnc_sstem_stack1/raw"


def score(pred: np.ndarray, hr: np.ndarray) -> str:
    pairs = [care_normalize(p, g) for p, g in zip(pred, hr)]
    return (f"{np.mean([psnr(q, t, 1.0) for q, t in pairs]):6.2f} dB  "
            f"{np.mean([ssim(q, t, 1.0) for q, t in pairs]):.4f}")


def bicubic(lr: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(lr.astype(np.float32))[:, None]
    return F.interpolate(t, scale_factor=4, mode="bicubic", align_corners=False)[:, 0].numpy()


def main() -> None:
    hr = np.stack([tifffile.imread(DATA / f"{z:02d}.tif") for z in (18, 19)]).astype(np.float32)
    down = Pipeline(steps=(Downsample(factor=4, method="bilinear"),))
    clean = down(hr / 255, np.random.default_rng(0)) * 255
    for preset in ("pssr-em", "pssr2"):
        lr = get_preset(preset)(hr / 255, np.random.default_rng(0))
        lr = np.clip(np.rint(lr * 255), 0, 255)
        print(f"{preset:8s} bicubic of the degraded LR       {score(bicubic(lr), hr)}")
    print(f"{'any':8s} bicubic of the noise-free LR     {score(bicubic(clean), hr)}")
    for s in (1.0, 2.0):
        print(f"{'oracle':8s} HR blurred, sigma {s} HR px      "
              f"{score(ndimage.gaussian_filter(hr, (0, s, s)), hr)}")


if __name__ == "__main__":
    main()
