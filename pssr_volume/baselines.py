"""The baselines a restoration is scored against (``pssr-volume evaluate``).

Each maps a low-resolution ``(z, y, x)`` volume to the high-resolution grid, section by
section, in float64 on the input's grey scale:

* ``bilinear``: ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``
  (pixel centres aligned; edge-clamped);
* ``bicubic``: the same with ``mode="bicubic"``: Keys cubic convolution with ``a = -0.75``
  (as OpenCV; PIL and MATLAB use ``a = -0.5``), edge-clamped;
* ``spline3``: cubic B-spline interpolation, ``scipy.ndimage.zoom(order=3, grid_mode=True,
  mode="reflect")``: PSSR's "bicubic" baseline;
* ``bm3d+bicubic``: BM3D denoising (the ``bm3d`` package, Makinen et al. 2020: the classical
  denoiser the PSSR paper compared against), then ``bicubic``. BM3D needs the noise's
  standard deviation; it is never tuned on the ground truth but taken from the input itself:
  the noise model ``var = a + b I`` that :func:`pssr_volume.noise.estimate_noise` fits to
  the LR volume (normalised to its 0.1-99.9 percentiles, as the engine does), at the
  volume's median intensity, times :data:`BM3D_SIGMA_FACTOR`. The estimate of a sharp,
  undersampled section also counts fine texture as noise; the factor was calibrated once on
  a training volume (``benchmarks/calibrate_bm3d.py``), never on a hold-out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from pssr_volume.noise import NoiseModel, estimate_noise

BASELINES = ("bilinear", "bicubic", "spline3", "bm3d+bicubic")
BM3D_SIGMA_FACTOR = 0.7
"""BM3D's sigma over the input's estimated noise: the best of 0.15-1.0 on VNC stack 1
(training data), sections 0-1, central 512 px, the presets ``pssr-em``, ``pssr2`` and
``integrate-read`` (mean gain over bicubic +0.105 dB; 1.0: -0.378 dB)."""


def upsample(lr: np.ndarray, scale: int, method: str) -> np.ndarray:
    """Interpolate a ``(z, y, x)`` volume by ``scale`` in y and x, section by section,
    in float64: ``bilinear``, ``bicubic`` or ``spline3``."""
    x = np.asarray(lr, dtype=np.float64)
    if method == "spline3":
        return np.stack([ndimage.zoom(s, scale, order=3, grid_mode=True, mode="reflect")
                         for s in x])
    if method not in ("bilinear", "bicubic"):
        raise ValueError(f"unknown baseline {method!r}")
    t = torch.from_numpy(x)[:, None]
    return F.interpolate(t, scale_factor=scale, mode=method, align_corners=False)[:, 0].numpy()


def bm3d_sigma(lr: np.ndarray) -> dict[str, float]:
    """The noise standard deviation BM3D is given (``sigma``, on the grey scale of ``lr``):
    :data:`BM3D_SIGMA_FACTOR` x the ``estimate`` from the noise model (normalised units)."""
    x = np.asarray(lr, dtype=np.float64)
    lo, hi = (float(v) for v in np.percentile(x, [0.1, 99.9]))
    span = hi - lo if hi > lo else 1.0
    unit = ((x - lo) / span).astype(np.float32)
    try:
        model = estimate_noise(list(unit))
    except ValueError:  # sections under 11 x 11 pixels: no estimate, so no denoising
        model = NoiseModel(0.0, 0.0)
    level = float(np.median(unit))
    estimate = math.sqrt(max(model.a + model.b * level, 0.0)) * span
    return {"sigma": BM3D_SIGMA_FACTOR * estimate, "estimate": estimate, "a": model.a,
            "b": model.b, "at_intensity": level}


def bm3d_then_upsample(lr: np.ndarray, scale: int) -> tuple[np.ndarray, dict[str, Any]]:
    """``bm3d+bicubic``: denoise each section with BM3D, then bicubic upsampling.

    Returns the float64 volume and what BM3D was given (``sigma`` in grey levels and the
    noise model).
    """
    import bm3d  # a heavy import (its compiled library), needed by this baseline only

    noise = bm3d_sigma(lr)
    x = np.asarray(lr, dtype=np.float64)
    if noise["sigma"] > 0:
        x = np.stack([np.asarray(bm3d.bm3d(s, sigma_psd=noise["sigma"]), dtype=np.float64)
                      for s in x])
    return upsample(x, scale, "bicubic"), noise


def to_dtype(a: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """Round and clip to an integer dtype (like the engine's output); floats unchanged."""
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return np.clip(np.rint(a), info.min, info.max).astype(dt)
    return a.astype(dt)
