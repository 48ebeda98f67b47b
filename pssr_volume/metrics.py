"""Image-quality metrics of the evaluation protocol (docs/DESIGN.md section 5).

Numpy in, numbers out.

CARE-style normalisation, as PSSR's ``metric_gen.py`` (via ``csbdeep.utils``) does it,
per 2-D section:

1. the ground truth is percentile-normalised: ``(gt - p0.1) / (p99.9 - p0.1)``, not clipped;
2. the prediction is fitted to it by least squares, ``a * pred + b`` with the ``a, b``
   minimising ``||a * pred + b - gt_n||^2`` (= mean-subtract both, scale by
   ``cov(pred, gt_n) / var(pred)``), so the score ignores global gain and offset;
3. PSNR and SSIM with ``data_range = 1``; SSIM is skimage ``structural_similarity`` with
   its defaults (7 x 7 uniform window, K1 0.01, K2 0.03, sample covariance).

Also: raw PSNR on the original grey scale (``data_range`` = 255 for 8-bit), NRMSE (the
RMSE after normalisation; data range 1), and z-consistency (mean absolute difference
between adjacent sections of the restored volume, relative to the same for the ground
truth, and the error of those differences).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from skimage.metrics import structural_similarity

F64 = NDArray[np.float64]


def percentile_normalize(x: ArrayLike, low: float = 0.1, high: float = 99.9) -> F64:
    """``(x - p_low) / (p_high - p_low)`` in float64, not clipped (a constant image maps
    to zeros)."""
    a = np.asarray(x, dtype=np.float64)
    lo, hi = np.percentile(a, [low, high])
    return (a - lo) / (hi - lo) if hi > lo else a - lo


def fit_affine(pred: ArrayLike, target: ArrayLike) -> tuple[float, float]:
    """Least-squares ``(scale, offset)`` with ``scale * pred + offset ~ target``.

    A constant ``pred`` gets scale 0 and the target's mean as offset.
    """
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    pm, tm = p.mean(), t.mean()
    var = np.mean((p - pm) ** 2)
    scale = float(np.mean((p - pm) * (t - tm)) / var) if var > 0 else 0.0
    return scale, float(tm - scale * pm)


def care_normalize(pred: ArrayLike, gt: ArrayLike, low: float = 0.1, high: float = 99.9
                   ) -> tuple[F64, F64]:
    """CARE/PSSR normalisation of one section: ``(fitted prediction, normalised gt)``."""
    gt_n = percentile_normalize(gt, low, high)
    p = np.asarray(pred, dtype=np.float64)
    a, b = fit_affine(p, gt_n)
    return a * p + b, gt_n


def psnr(pred: ArrayLike, target: ArrayLike, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images (also above 200 dB,
    where only float rounding separates them, e.g. after the least-squares fit)."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    mse = float(np.mean(d * d))
    return math.inf if mse <= 1e-20 * data_range**2 else 10 * math.log10(data_range**2 / mse)


def ssim(pred: ArrayLike, target: ArrayLike, data_range: float = 1.0) -> float:
    """skimage ``structural_similarity`` with its defaults (2-D)."""
    return float(structural_similarity(np.asarray(pred, dtype=np.float64),
                                       np.asarray(target, dtype=np.float64),
                                       data_range=data_range))


def raw_range(dtype: np.dtype | str, gt: ArrayLike | None = None) -> float:
    """Data range for raw PSNR: the integer type's maximum (255 for uint8), else the
    ground truth's span."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return float(np.iinfo(dtype).max)
    g = np.asarray(gt, dtype=np.float64)
    return float(g.max() - g.min()) or 1.0


def section_metrics(pred: ArrayLike, gt: ArrayLike, data_range_raw: float) -> dict[str, float]:
    """Metrics of one 2-D section.

    Returns
    -------
    dict
        ``psnr`` and ``ssim`` (CARE-normalised, data range 1), ``nrmse`` (RMSE after
        normalisation), ``psnr_raw`` (original grey scale, ``data_range_raw``).
    """
    p_n, g_n = care_normalize(pred, gt)
    rmse = float(np.sqrt(np.mean((p_n - g_n) ** 2)))
    return {
        "psnr": psnr(p_n, g_n, 1.0),
        "ssim": ssim(p_n, g_n, 1.0),
        "nrmse": rmse,
        "psnr_raw": psnr(pred, gt, data_range_raw),
    }


def z_consistency(pred: ArrayLike, gt: ArrayLike, data_range_raw: float) -> dict[str, float]:
    """How smoothly a restored volume continues from section to section, against the truth.

    With ``d(v) = mean |v[z+1] - v[z]|`` (in units of ``data_range_raw``):

    * ``z_mad``: ``d(pred)``; ``z_mad_hr``: ``d(gt)``;
    * ``z_mad_ratio``: ``d(pred) / d(gt)`` (> 1: the restoration flickers more between
      sections than the real volume changes; < 1: it is smoother than the truth);
    * ``z_grad_err``: ``mean |(pred[z+1] - pred[z]) - (gt[z+1] - gt[z])|``, the error of
      the z-differences themselves.

    Needs at least two sections (else every value is NaN).
    """
    p = np.asarray(pred, dtype=np.float64) / data_range_raw
    g = np.asarray(gt, dtype=np.float64) / data_range_raw
    if p.shape[0] < 2:
        nan = float("nan")
        return {"z_mad": nan, "z_mad_hr": nan, "z_mad_ratio": nan, "z_grad_err": nan}
    dp, dg = np.diff(p, axis=0), np.diff(g, axis=0)
    mp, mg = float(np.abs(dp).mean()), float(np.abs(dg).mean())
    return {"z_mad": mp, "z_mad_hr": mg, "z_mad_ratio": mp / mg if mg > 0 else math.inf,
            "z_grad_err": float(np.abs(dp - dg).mean())}


def volume_metrics(pred: ArrayLike, gt: ArrayLike, data_range_raw: float | None = None
                   ) -> dict[str, Any]:
    """Section metrics averaged over z, per-section values, and z-consistency.

    Parameters
    ----------
    pred, gt : array_like
        ``(z, y, x)`` (or ``(y, x)``) restored and ground-truth volumes of one shape, on
        the same grey scale (e.g. both uint8).
    data_range_raw : float, optional
        For raw PSNR and z-consistency; default :func:`raw_range` of ``gt``'s dtype.

    Returns
    -------
    dict
        Means ``psnr``, ``ssim``, ``nrmse``, ``psnr_raw``, the z-consistency values, and
        ``sections``: the per-section metric dicts.
    """
    p, g = np.asarray(pred), np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    if g.ndim == 2:
        p, g = p[None], g[None]
    rng = raw_range(g.dtype, g) if data_range_raw is None else data_range_raw
    sections = [section_metrics(a, b, rng) for a, b in zip(p, g)]
    out: dict[str, Any] = {k: float(np.mean([s[k] for s in sections])) for k in sections[0]}
    out.update(z_consistency(p, g, rng))
    out["sections"] = sections
    return out

