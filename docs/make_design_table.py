"""The equal-budget design comparison of issue 9, as a Markdown section for docs/RESULTS.md.

Reads the training runs of ``benchmarks/compare_designs.sh`` (``RUNS/<name>/metrics.csv`` and
``train.json``) and the hold-out evaluations of their models (``pssr-volume evaluate ...
--out EVAL``, any number of ``--eval`` folders): for each design, the checkpoint its run
selected (the best validation score; validation = the held-back 10 % of the training volumes),
its validation gains over bicubic per preset, and its hold-out gains. Designs are chosen on
validation only; the hold-out columns are reported, never used to choose.

    python docs/make_design_table.py --runs results/issue9 \\
        --eval results/issue9/eval-vnc-all > docs/results/designs.md
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

PRESETS = ("pssr-em", "pssr2", "integrate-read")


def _gain(row: dict[str, str], preset: str) -> tuple[float, float]:
    return (float(row[f"val_psnr_{preset}"]) - float(row[f"bicubic_psnr_{preset}"]),
            float(row[f"val_ssim_{preset}"]) - float(row[f"bicubic_ssim_{preset}"]))


def _score(row: dict[str, str]) -> float:
    present = [p for p in PRESETS if f"val_psnr_{p}" in row]
    return sum(_gain(row, p)[0] / 1.5 + _gain(row, p)[1] / 0.05 for p in present) / len(present)


def _holdout(evals: list[Path]) -> dict[str, dict[str, tuple[float, float]]]:
    """model name -> preset -> (PSNR, SSIM) gain over bicubic on the hold-out."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for folder in evals:
        res = json.loads((folder / "results.json").read_text())
        for case in res["cases"]:
            base = case["methods"]["bicubic"]
            for name, m in case["methods"].items():
                out.setdefault(name, {})[case["preset"]] = (m["psnr"] - base["psnr"],
                                                            m["ssim"] - base["ssim"])
    return out


def _cell(g: tuple[float, float] | None) -> str:
    return "-" if g is None else f"{g[0]:+.2f} / {g[1]:+.3f}"


def table(runs: Path, evals: list[Path]) -> list[str]:
    hold = _holdout(evals)
    head = ("| design | architecture | noise-aware | training degradation | loss | steps "
            "(selected) | wall s | " + " | ".join(f"val `{p}`" for p in PRESETS) + " | "
            + " | ".join(f"hold-out `{p}`" for p in PRESETS) + " |")
    lines = [head, "|---" * (7 + 2 * len(PRESETS)) + "|"]
    for folder in sorted(p for p in runs.iterdir() if (p / "metrics.csv").is_file()):
        rows = list(csv.DictReader((folder / "metrics.csv").read_text().splitlines()))
        cfg: dict[str, Any] = json.loads((folder / "train.json").read_text())
        best = max(rows, key=_score)
        loss = cfg["loss"] if cfg["loss"] != "ssim" else (
            f"{cfg.get('ssim_weight', 0.8):g} (1-SSIM) + {1 - cfg.get('ssim_weight', 0.8):g} L1")
        name = folder.name
        cells = [f"`{name}`", cfg["architecture"], "yes" if cfg.get("noise_input") else "no",
                 cfg["crappifier"], loss, f"{rows[-1]['step']} ({best['step']})",
                 f"{float(rows[-1]['seconds']):.0f}"]
        cells += [_cell(_gain(best, p)) for p in PRESETS]
        cells += [_cell(hold.get(name, {}).get(p)) for p in PRESETS]
        lines.append("| " + " | ".join(cells) + " |")
    for name in ("bm3d+bicubic",):
        if name in hold:
            lines.append(f"| {name} (baseline) | - | - | - | - | - | - | - | - | - | "
                         + " | ".join(_cell(hold[name].get(p)) for p in PRESETS) + " |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--eval", type=Path, action="append", default=[])
    args = p.parse_args()
    print("\n".join(table(args.runs, args.eval)))


if __name__ == "__main__":
    main()
