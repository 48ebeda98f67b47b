"""Training losses: L1, MSE, and SSIM mixed with L1 or MSE, with a differentiable SSIM equal
to the one the evaluation reports."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ssim_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win: int = 7
               ) -> torch.Tensor:
    """Mean SSIM of (N, 1, H, W) images, differentiable: the definition of skimage's
    ``structural_similarity`` defaults (7 x 7 uniform window, sample covariance, K1 = 0.01,
    K2 = 0.03, borders cropped), i.e. what :func:`pssr_volume.metrics.ssim` reports."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = win * win
    cov = n / (n - 1)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov * (mean(x * x) - ux * ux)
    vy = cov * (mean(y * y) - uy * uy)
    vxy = cov * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean()


def loss_fn(kind: str, pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.8
            ) -> torch.Tensor:
    """Training loss: ``l1``, ``mse``, ``ssim`` = w (1 - SSIM) + (1 - w) L1, or ``mse-ssim``
    = w (1 - SSIM) + (1 - w) MSE, with ``w = ssim_weight`` (0.8: the PSSR2 mix; the
    evaluation's SSIM window).

    For EM tiles (local signal variance about 0.02 of the normalised range) the SSIM term's
    gradient is some 3-4x the L1 term's per unit weight, so 0.8 is SSIM-led and 0.2 about
    balanced. MSE's gradient, twice the error, is several times smaller again than L1's for
    errors of about 0.1: ``mse-ssim`` balances at a far smaller ``w`` (about 0.01-0.02)."""
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind in ("ssim", "mse-ssim"):
        w = ssim_weight
        pixel = F.l1_loss(pred, target) if kind == "ssim" else F.mse_loss(pred, target)
        return w * (1 - ssim_torch(pred, target)) + (1 - w) * pixel
    return F.l1_loss(pred, target)
