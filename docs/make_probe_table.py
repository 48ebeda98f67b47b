"""The fine-tune probes of benchmarks/finetune_probes.sh as a table: gains over bicubic
(PSNR dB / SSIM) on the VNC validation sections, per probe and degradation.

    python docs/make_probe_table.py results/probes

Reads PROBES/vnc-validation/<label>/results.json (``evaluate`` outputs); a probe not (yet)
scored is left out. docs/make_results.py puts the table into docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PRESETS = ("pssr-em", "pssr2", "integrate-read")
PROBES = {
    "bundled": "the previous bundled `pssr-em-x4` (no fine-tuning)",
    "control": "2000 more steps, nothing changed",
    "sstem-only": "2000 steps on the three ssTEM volumes only",
    "w0.10": "2000 steps, loss 0.10 (1 - SSIM) + 0.90 L1",
    "w0.05": "2000 steps, loss 0.05 (1 - SSIM) + 0.95 L1",
    "mse": "2000 steps, loss MSE",
    "deep-w0.05": "twice the residual blocks, 4000 steps, loss as w0.05",
    "deep-mse-w0.01": "twice the residual blocks, 3000 steps, loss 0.01 (1 - SSIM) + 0.99 MSE",
    "deep-mse-w0.02": "twice the residual blocks, 3000 steps, loss 0.02 (1 - SSIM) + 0.98 MSE",
}
BASELINES = {"bilinear", "bicubic", "spline3", "bm3d+bicubic"}


def gains(results: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Per preset: (PSNR gain, SSIM gain) over bicubic of the one model in ``results``."""
    out = {}
    for case in results["cases"]:
        (model,) = [m for m in case["methods"] if m not in BASELINES]
        s, b = case["methods"][model], case["methods"]["bicubic"]
        out[case["preset"]] = (s["psnr"] - b["psnr"], s["ssim"] - b["ssim"])
    return out


def measured(probes: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """Every scored probe, selected and final model, in the order of :data:`PROBES`."""
    found = {}
    for name in PROBES:
        for label in (name, f"{name}@final"):
            f = probes / "vnc-validation" / label / "results.json"
            if f.is_file():
                found[label] = gains(json.loads(f.read_text()))
    return found


def table(found: dict[str, dict[str, tuple[float, float]]]) -> list[str]:
    lines = ["| probe | model | " + " | ".join(f"`{p}`" for p in PRESETS) + " |",
             "|---" * (len(PRESETS) + 2) + "|"]
    for label, g in found.items():
        name, _, final = label.partition("@")
        which = "last step" if final else ("as shipped" if name == "bundled" else "selected")
        cells = [f"{g[p][0]:+.2f} / {g[p][1]:+.3f}" for p in PRESETS]
        lines.append(f"| `{name}`: {PROBES[name]} | {which} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("probes", type=Path, help="benchmarks/finetune_probes.sh's folder")
    print("\n".join(table(measured(ap.parse_args().probes))))


if __name__ == "__main__":
    main()
