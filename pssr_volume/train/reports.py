"""Run reports: ``metrics.csv``, ``metrics.json`` and the ``training.png`` plot of
training loss and validation PSNR."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from pssr_volume.train.checkpoint import State
from pssr_volume.train.validation import SELECTION, selection_score


def write_reports(out: Path, state: State, base: dict[str, float]) -> None:
    """``metrics.csv``, ``metrics.json`` and the ``training.png`` plot of the run so far."""
    if state.rows:
        with open(out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(state.rows[-1]))
            w.writeheader()
            w.writerows(state.rows)
    best = max(state.rows, key=selection_score, default=None)
    (out / "metrics.json").write_text(json.dumps({
        "validation": state.rows, "bicubic_psnr": base, "best": best,
        "selected_by": SELECTION, "train_loss_per_step": state.losses,
    }, indent=1))
    plot_training(out / "training.png", state, base)


def plot_training(path: Path, state: State, base: dict[str, float]) -> None:
    """Training loss (per step and smoothed) and validation PSNR per preset, vs step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    if state.losses:
        steps = np.arange(1, len(state.losses) + 1)
        ax1.plot(steps, state.losses, color="0.75", lw=0.5, label="loss per step")
        k = max(1, len(state.losses) // 50)
        smooth = np.convolve(state.losses, np.ones(k) / k, mode="valid")
        ax1.plot(steps[k - 1 :], smooth, color="C0", label=f"mean of {k}")
        ax1.set_yscale("log")
    ax1.set_ylabel("training loss")
    ax1.legend(loc="upper right")
    rows = state.rows
    for i, name in enumerate(base):
        if rows:
            ax2.plot([r["step"] for r in rows], [r[f"val_psnr_{name}"] for r in rows],
                     "o-", color=f"C{i}", label=f"model, {name}")
        ax2.axhline(base[name], color=f"C{i}", ls="--", lw=1, label=f"bicubic, {name}")
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation PSNR (dB, CARE-normalised)")
    ax2.legend(loc="lower right", fontsize="small")
    fig.savefig(path, dpi=100)
