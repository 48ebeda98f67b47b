"""The leave-one-dataset-out table of docs/RESULTS.md from the evaluations of docs/lodo.sh.

    python docs/make_lodo_table.py results/lodo

For each left-out source: the gain over bicubic (CARE-normalised PSNR dB / SSIM, mean over the
evaluated sections) of the model trained without it and of the bundled model, per degradation,
and whether the left-out model meets the issue-20 target (at least +0.35 dB and +0.01 SSIM
under every degradation).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET_DB, TARGET_SSIM = 0.35, 0.01
SOURCES = {
    "vnc": "Drosophila VNC ssTEM (hold-out stack 2)",
    "fib": "Drosophila medulla FIB-SEM (hold-out)",
    "sbem": "CDeep3M SBEM (test z-run 81-85)",
    "mussel": "mussel SEM tiles (sample 3)",
}


def _gains(results: dict) -> dict[str, dict[str, tuple[float, float]]]:
    """{model: {preset: (dPSNR, dSSIM)}} over bicubic."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for case in results["cases"]:
        methods = case["methods"]
        base = methods["bicubic"]
        for name in results["models"]:
            m = methods[name]
            out.setdefault(name, {})[case["preset"]] = (m["psnr"] - base["psnr"],
                                                        m["ssim"] - base["ssim"])
    return out


def table(root: Path) -> str:
    rows = ["| left out | model | " + " | ".join(["`pssr-em`", "`pssr2`", "`integrate-read`",
                                                    "`jpeg`"]) + " | target met |",
            "|---|---|---|---|---|---|---|"]
    for key, label in SOURCES.items():
        path = root / f"eval-{key}" / "results.json"
        if not path.is_file():
            rows.append(f"| {label} | (not evaluated) | | | | | |")
            continue
        gains = _gains(json.loads(path.read_text()))
        for name, per in gains.items():
            cells = [f"{per[p][0]:+.2f} / {per[p][1]:+.3f}" if p in per else ""
                     for p in ("pssr-em", "pssr2", "integrate-read", "jpeg")]
            left_out = "without" in name
            if name.endswith("all-sources"):
                name = "all sources, same budget"
            met = all(d >= TARGET_DB and s >= TARGET_SSIM for d, s in per.values())
            verdict = ("yes" if met else "no") if left_out else ""
            rows.append(f"| {label} | {'left-out model' if left_out else name} | "
                        + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table(Path(sys.argv[1] if len(sys.argv) > 1 else "results/lodo")))
