"""Make docs/images/before_after.png, the README picture.

A section of the hold-out Drosophila VNC ssTEM stack (4.6 nm pixels; evaluation use only)
is degraded x4 with the PSSR EM crappifier (18.4 nm) and restored by ``pssr-volume run``
with the bundled model. Panels: the 18.4 nm input (pixels shown as they are), bicubic
upsampling, pssr-volume, and the real 4.6 nm section.

    python docs/make_figures.py  # needs ../shared/data
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tifffile
import zarr
from scipy import ndimage

from pssr_volume.config import RunConfig
from pssr_volume.crappify.presets import get_preset
from pssr_volume.run import run

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "holdout_drosophila_vnc_sstem_stack2" / "raw"
OUT = ROOT / "docs" / "images" / "before_after.png"


def main(section: int = 10, y: int = 400, x: int = 560, size: int = 256) -> None:
    # the whole section is degraded and restored, as a user would (the noise is estimated on
    # the whole input); the panels show one region of it
    full = tifffile.imread(DATA / f"{section:02d}.tif")
    lr_full = get_preset("pssr-em")(full / 255.0, np.random.default_rng(0))
    lr_full = np.clip(np.rint(lr_full * 255), 0, 255).astype(np.uint8)
    hr = full[y : y + size, x : x + size]
    lr = lr_full[y // 4 : (y + size) // 4, x // 4 : (x + size) // 4]
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "lr.tif"
        tifffile.imwrite(inp, lr_full[None], imagej=True, resolution=(1 / 18.4, 1 / 18.4),
                         metadata={"spacing": 50.0, "unit": "nm", "axes": "ZYX"})
        run(RunConfig(input=inp, output=Path(tmp) / "out.ome.zarr", cluster="sync",
                      progress=False))
        restored = zarr.open_array(str(Path(tmp) / "out.ome.zarr" / "0"), mode="r")[
            0, y : y + size, x : x + size]
    bicubic = np.clip(ndimage.zoom(lr.astype(float), 4, order=3), 0, 255)
    panels = [
        (np.kron(lr, np.ones((4, 4))), "input, 18.4 nm pixels"),
        (bicubic, "bicubic x4"),
        (restored, "pssr-volume x4 (4.6 nm)"),
        (hr, "real 4.6 nm section"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.3), dpi=100)
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.text(0.5, 0.01, "Hold-out ssTEM section (Gerhard et al. 2013, CC BY-NC-SA 3.0), degraded "
             "x4 with the PSSR EM crappifier, 1.18 x 1.18 um", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
