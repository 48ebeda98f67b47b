"""The leave-one-dataset-out table of docs/RESULTS.md from the evaluations of docs/lodo.sh.

    python docs/make_lodo_table.py results/lodo
    python docs/make_lodo_table.py --adapt results/lodo    # the adaptation probe

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
    "hela": "HeLa SBEM (EMPIAR-10094, z 146-154)",
}
FOLDERS = {  # what a training input's path holds when it comes from the source
    "vnc": ("drosophila_vnc_sstem", "isbi2012_sstem"),
    "fib": ("flyem_medulla_fibsem",),
    "sbem": ("sbem_cdeep3m",),
    "mussel": ("mussel_tissue_sem",),
    "hela": ("hela_sbem", "ROI_6005_4739"),
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


def _trained_on(model_path: str, key: str) -> bool:
    """Whether the model's recorded training inputs include the source ``key``."""
    from pssr_volume.model_header import read_config

    inputs = (read_config(model_path).training or {}).get("inputs") or []
    return any(folder in str(i) for i in inputs for folder in FOLDERS[key])


def _label(name: str, left_out: bool) -> str:
    if name.endswith("all-sources"):
        return "all sources, same budget" + (" (never saw it)" if left_out else "")
    if "without" in name:
        return "left-out model"
    return f"`{name}` (bundled{', never saw it' if left_out else ''})"


def table(root: Path) -> str:
    rows = ["| left out | model | " + " | ".join(["`pssr-em`", "`pssr2`", "`integrate-read`",
                                                    "`jpeg`"]) + " | target met |",
            "|---|---|---|---|---|---|---|"]
    for key, label in SOURCES.items():
        path = root / f"eval-{key}" / "results.json"
        if not path.is_file():
            rows.append(f"| {label} | (not evaluated) | | | | | |")
            continue
        results = json.loads(path.read_text())
        for name, per in _gains(results).items():
            cells = [f"{per[p][0]:+.2f} / {per[p][1]:+.3f}" if p in per else ""
                     for p in ("pssr-em", "pssr2", "integrate-read", "jpeg")]
            left_out = not _trained_on(results["models"][name]["path"], key)
            met = all(d >= TARGET_DB and s >= TARGET_SSIM for d, s in per.values())
            verdict = ("yes" if met else "no") if left_out else ""
            rows.append(f"| {label} | {_label(name, left_out)} | " + " | ".join(cells)
                        + f" | {verdict} |")
    return "\n".join(rows) + "\n"


def adapt_table(root: Path) -> str:
    """The adaptation probe (docs/adapt_probe.sh): per left-out source and degradation, the
    gain over bicubic of the left-out model and of the same model fine-tuned on the degraded
    input alone, and what the fine-tune added (target: at least +0.1 dB to ship it)."""
    presets = ("pssr-em", "pssr2", "integrate-read", "jpeg")
    rows = ["| left out | degradation | left-out model | adapted | adaptation adds |",
            "|---|---|---|---|---|"]
    for key, label in SOURCES.items():
        for preset in presets:
            path = root / f"eval-adapt-{key}-{preset}" / "results.json"
            if not path.is_file():
                continue
            results = json.loads(path.read_text())
            base_name, adapted_name = list(results["models"])
            (case,) = results["cases"]
            m, bic = case["methods"], case["methods"]["bicubic"]
            base = (m[base_name]["psnr"] - bic["psnr"], m[base_name]["ssim"] - bic["ssim"])
            ada = (m[adapted_name]["psnr"] - bic["psnr"], m[adapted_name]["ssim"] - bic["ssim"])
            rows.append(f"| {label} | `{preset}` | {base[0]:+.2f} / {base[1]:+.3f} | "
                        f"{ada[0]:+.2f} / {ada[1]:+.3f} | {ada[0] - base[0]:+.2f} / "
                        f"{ada[1] - base[1]:+.3f} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--adapt"]
    root = Path(args[0] if args else "results/lodo")
    sys.stdout.write(adapt_table(root) if "--adapt" in sys.argv else table(root))
