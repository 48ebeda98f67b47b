"""What ``pssr-volume evaluate`` writes: results.json, the Markdown table, PNG montages."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = [("psnr", "PSNR (dB)", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"),
           ("psnr_raw", "raw PSNR (dB)", "{:.2f}"), ("nrmse", "NRMSE", "{:.4f}"),
           ("z_mad_ratio", "z MAD / HR", "{:.3f}"), ("z_grad_err", "z-diff error", "{:.4f}"),
           ("frc_cycles_per_px", "FRC 0.5 (cycles/px)", "{:.3f}"),
           ("frc_period_nm", "FRC period (nm)", "{:.1f}")]


def _finite(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_results(out: Path, results: dict[str, Any]) -> None:
    """Write results.json (non-finite numbers as null) and results.md."""
    (out / "results.json").write_text(json.dumps(_finite(results), indent=1))
    (out / "results.md").write_text(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    """One Markdown table per case: every method's mean metrics and engine throughput."""
    lines = ["# Evaluation results", "",
             "PSNR/SSIM after CARE normalisation (GT percentile 0.1-99.9 %, prediction fitted "
             "by least squares; data range 1; SSIM: skimage defaults), mean over sections. "
             "Raw PSNR on the original grey scale. z MAD / HR: mean |difference between "
             "adjacent sections| of the method over that of HR; z-diff error: mean |error of "
             "those differences| (fraction of the grey range). Mpx/s: output megapixels "
             "per second through the engine.", ""]
    for b, text in results["baselines"].items():
        lines.append(f"- `{b}`: {text}")
    for case in results["cases"]:
        head = f"## {case['name']}"
        what = (f"preset `{case['preset']}`, seed {case.get('seed')}" if case["preset"]
                else "real LR/HR pair")
        lines += ["", head, "",
                  f"HR `{case['hr']}` region (z, y, x) {case['region_hr']}, {what}, "
                  f"x{case['scale']}.", ""]
        lines.append("| method | " + " | ".join(c[1] for c in COLUMNS) + " | Mpx/s |")
        lines.append("|---" * (len(COLUMNS) + 2) + "|")
        for m, s in case["methods"].items():
            cells = [_cell(fmt, s.get(key)) for key, _, fmt in COLUMNS]
            speed = case["engine"].get(m, {}).get("out_mpx_per_s")
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {_cell('{:.3f}', speed)} |")
    return "\n".join(lines) + "\n"


def _cell(fmt: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "nan"
    return fmt.format(v)


def montage(path: Path, lr: np.ndarray, preds: dict[str, np.ndarray], hr: np.ndarray,
            scores: dict[str, dict[str, Any]], scale: int, title: str = "",
            size: int = 256) -> None:
    """PNG of the middle section's centre: LR (nearest), each method, HR; below, the
    absolute error of each method (one colour scale)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    z = hr.shape[0] // 2
    h, w = hr.shape[1:]
    sy, sx = min(size, h), min(size, w)
    y0, x0 = (h - sy) // 2 // scale * scale, (w - sx) // 2 // scale * scale
    win = (slice(y0, y0 + sy), slice(x0, x0 + sx))
    lr_up = lr[z].repeat(scale, 0).repeat(scale, 1)
    shown = [("LR (nearest)", lr_up), *((m, p[z]) for m, p in preds.items()), ("HR", hr[z])]
    lo, hi = float(hr[z].min()), float(hr[z].max())
    errs = {m: np.abs(p[z][win].astype(np.float64) - hr[z][win]) for m, p in preds.items()}
    emax = max(float(np.percentile(e, 99.5)) for e in errs.values()) or 1.0
    n = len(shown)
    fig = Figure(figsize=(2.2 * n, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, n, squeeze=False)
    for ax, (label, img) in zip(axes[0], shown):
        ax.imshow(img[win], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        s = scores.get(label)
        ax.set_title(label if s is None else f"{label}\n{s['psnr']:.2f} dB, {s['ssim']:.3f}",
                     fontsize=8)
    for ax, (label, _) in zip(axes[1], shown):
        if label in errs:
            ax.imshow(errs[label], cmap="magma", vmin=0, vmax=emax, interpolation="nearest")
            ax.set_title(f"|{label} - HR|", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    if title:
        fig.suptitle(f"{title}, section {z}", fontsize=9)
    fig.savefig(path, dpi=110)
