"""Gains over bicubic (PSNR dB / SSIM) of every model in an ``evaluate`` results.json, one
row per model and one column per degradation: a markdown table.

    python benchmarks/gain_table.py results/probes/vnc-validation/results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BASELINES = {"bilinear", "bicubic", "spline3", "bm3d+bicubic"}


def gain_table(results: dict) -> str:
    cases = results["cases"]
    models = [m for m in cases[0]["methods"] if m not in BASELINES]
    head = "| model | " + " | ".join(c["preset"] or c["name"] for c in cases) + " |"
    rows = [head, "|---" * (len(cases) + 1) + "|"]
    for m in models:
        cells = []
        for c in cases:
            s, b = c["methods"][m], c["methods"]["bicubic"]
            cells.append(f"{s['psnr'] - b['psnr']:+.2f} / {s['ssim'] - b['ssim']:+.3f}")
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    print(gain_table(json.loads(ap.parse_args().results.read_text())))


if __name__ == "__main__":
    main()
