"""Make docs/images/neuroglancer.png: a restored volume as a user sees it in neuroglancer.

A 3 x 512 x 512 crop of the Drosophila VNC ssTEM stack 1 (4.6 nm pixels; the last sections,
which the training run keeps for validation; the stack is a training set, so this picture shows
the viewer, not a quality measurement) is degraded x4 with the PSSR EM crappifier (18.4 nm),
restored by ``pssr-volume run``, and the original crop and the 18.4 nm input are converted
with ``pssr-volume convert``. The three OME-Zarr images are served over HTTP on localhost
(with CORS) and opened side by side in neuroglancer in headless Chromium; the screenshot is
labelled and saved as PNG.

    python docs/make_neuroglancer_png.py [--model MODEL.safetensors] [--out PATH]

Needs ../shared/data, ``pip install neuroglancer selenium`` (the ``dev`` extra) and Debian's
``chromium chromium-driver``. The default model is the bundled EM model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageFont

from pssr_volume.bundled import bundled_model_path
from pssr_volume.crappify.presets import get_preset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from neuroglancer_viewer import NeuroglancerBrowser, serve_directory  # noqa: E402  (tests/)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "drosophila_vnc_sstem_stack1" / "raw"
SECTIONS, Y0, X0, SIDE = range(17, 20), 256, 320, 512  # HR crop (z, y, x)
PANEL = 400  # screen pixels per panel side
LABELS = ("input, 18.4 nm pixels", "pssr-volume run, 4.6 nm", "acquired at 4.6 nm")


def _imagej(path: Path, data: np.ndarray, pixel_nm: float) -> Path:
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / pixel_nm, 1 / pixel_nm),
                     metadata={"spacing": 50.0, "unit": "nm", "axes": "ZYX"})
    return path


def _cli(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "pssr_volume.cli", *map(str, args)], check=True)


def make_volumes(work: Path, model: Path) -> None:
    """Write lr.ome.zarr, restored.ome.zarr and hr.ome.zarr into `work`."""
    files = sorted(DATA.glob("*.tif"))
    hr = np.stack([tifffile.imread(files[z])[Y0:Y0 + SIDE, X0:X0 + SIDE] for z in SECTIONS])
    crappify, rng = get_preset("pssr-em", 4), np.random.default_rng(0)
    lr = np.stack([np.clip(np.rint(crappify(s.astype(np.float32) / 255, rng) * 255), 0, 255)
                   for s in hr]).astype(np.uint8)
    lr_tif = _imagej(work / "lr.tif", lr, 18.4)
    hr_tif = _imagej(work / "hr.tif", hr, 4.6)
    _cli("run", lr_tif, work / "restored.ome.zarr", "--model", model, "--cluster", "sync",
         "--no-progress")
    _cli("convert", lr_tif, work / "lr.ome.zarr", "--no-progress")
    _cli("convert", hr_tif, work / "hr.ome.zarr", "--no-progress")


def screenshot(work: Path) -> Image.Image:
    """The three volumes side by side in neuroglancer, labelled."""
    names = ("lr", "restored", "hr")
    with serve_directory(work) as base, NeuroglancerBrowser() as ng:
        ng.show({n: f"{base}/{n}.ome.zarr" for n in names}, side_by_side=True, scale_bar=True,
                center_nm=(50.0, 4.6 * SIDE / 2, 4.6 * SIDE / 2), pixel_nm=4.6 * SIDE / PANEL)
        pixels = ng.screenshot((3 * PANEL, PANEL))
    image = Image.fromarray(pixels).convert("L")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=18)
    for i, label in enumerate(LABELS):
        x, y = i * PANEL + 8, 6
        box = draw.textbbox((x, y), label, font=font)
        draw.rectangle((box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3), fill=0)
        draw.text((x, y), label, fill=255, font=font)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=bundled_model_path())
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "neuroglancer.png")
    args = parser.parse_args()
    if not args.model.is_file():
        sys.exit(f"model not found: {args.model} (pass --model)")
    if not DATA.is_dir():
        sys.exit(f"data not found: {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        make_volumes(Path(tmp), args.model)
        image = screenshot(Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({image.width}x{image.height}, {size / 1024:.0f} kB)")
    if size > 500 * 1024:
        sys.exit("the picture is over 500 kB")


if __name__ == "__main__":
    main()
