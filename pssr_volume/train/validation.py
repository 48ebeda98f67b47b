"""Validation scores: the model and the bicubic baseline on the validation tiles, their
CARE-normalised PSNR and SSIM, and the score that ranks checkpoints."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pssr_volume.metrics import care_normalize
from pssr_volume.metrics import psnr as psnr_metric
from pssr_volume.metrics import ssim as ssim_metric
from pssr_volume.precision import autocast


@torch.inference_mode()
def predict_tiles(module: torch.nn.Module, lr: torch.Tensor, device: str, batch: int = 8,
                  amp: torch.dtype | None = None) -> np.ndarray:
    """``module`` on validation inputs: (n, H, W) float32 numpy."""
    out = []
    for i in range(0, len(lr), batch):
        with autocast(device, amp):
            x = lr[i : i + batch].to(device).contiguous(memory_format=torch.channels_last)
            pred = module(x)
        out.append(pred.float().cpu()[:, 0].numpy())
    return np.concatenate(out)


def bicubic_tiles(lr: torch.Tensor, scale: int, in_slices: int) -> np.ndarray:
    """Bicubic (Keys, a = -0.75) upsampling of the centre sections: the baseline to beat.
    ``lr``'s first ``in_slices`` channels are the sections (then the noise map, if any)."""
    c = in_slices // 2
    up = F.interpolate(lr[:, c : c + 1], scale_factor=scale, mode="bicubic", align_corners=False)
    return up[:, 0].numpy()


def val_scores(pred: np.ndarray, hr: torch.Tensor) -> dict[str, float]:
    """Mean CARE-normalised PSNR and SSIM (the evaluation protocol) over validation tiles."""
    ps, ss = [], []
    for p, g in zip(pred, hr[:, 0].numpy()):
        q, t = care_normalize(p, g)
        ps.append(min(psnr_metric(q, t, 1.0), 100.0))
        ss.append(ssim_metric(q, t, 1.0))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}


SELECTION = ("mean over presets of (PSNR gain over bicubic / 1.5 dB + SSIM gain over "
             "bicubic / 0.05), CARE-normalised, on the validation tiles")


def selection_score(row: dict[str, Any]) -> float:
    """How a validation row ranks checkpoints (see :data:`SELECTION`)."""
    presets = [k.removeprefix("val_psnr_") for k in row if k.startswith("val_psnr_")]
    return float(np.mean([
        (row[f"val_psnr_{p}"] - row[f"bicubic_psnr_{p}"]) / 1.5
        + (row[f"val_ssim_{p}"] - row[f"bicubic_ssim_{p}"]) / 0.05 for p in presets]))
