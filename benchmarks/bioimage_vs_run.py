"""A bioimage.io package of a bundled model, used the way a consumer uses it, against `run`.

For each bundled model: `pssr-volume export-model` writes its package; `pssr-volume run`
restores a 256 x 256 demo tile (as many sections as the model takes, so both see the same
sections and the same whole-volume percentiles); bioimageio.core's `predict` restores the same
tile from the package, blockwise (blocksize parameter 10: input blocks of 148 px for
pssr-em-x4, 100 px for the iso model, halo included) and as one block, given the noise model
(a, b) that `run` estimated. Prints, per model and mode, how far
the package's restoration (mapped back to grey levels with `run`'s intensity range) is from
`run`'s, over the whole section and beyond the halo, and the seconds each step took.

    python benchmarks/bioimage_vs_run.py [MODEL...]   # -> benchmarks/results/bioimage-vs-run.txt
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import zarr

from pssr_volume.bundled import BUNDLED, bundled_model_path
from pssr_volume.demo import make_demo_volume
from pssr_volume.io.ome_zarr import read_provenance
from pssr_volume.model import model_info

CLI = str(Path(sys.executable).with_name("pssr-volume"))


def _timed(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def main() -> None:
    from bioimageio.core import load_description, predict

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name in sys.argv[1:] or BUNDLED:
            info = model_info(bundled_model_path(name))
            k, halo = info.config.in_slices, max(info.default_halo)
            package = tmp / f"{name}.zip"
            t_export = _timed([CLI, "export-model", name, str(package)])
            raw, _ = make_demo_volume((k, 256, 256), seed=3)
            voxel = (50.0, 18.4) if k == 1 else (10.0, 40.0)
            inp = tmp / f"{name}.tif"
            tifffile.imwrite(inp, raw, imagej=True, resolution=(1 / voxel[1], 1 / voxel[1]),
                             metadata={"spacing": voxel[0], "unit": "nm", "axes": "ZYX"})
            out = tmp / f"{name}.ome.zarr"
            t_run = _timed([CLI, "run", str(inp), str(out), "--model", name, "--cluster",
                            "sync", "--no-progress"])
            prov = (read_provenance(out) or {})["settings"]
            lo, hi = prov["intensity_range"]
            a, b = prov["noise"]["a"], prov["noise"]["b"]
            got = zarr.open_array(str(out / "0"), mode="r")[k // 2].astype(int)
            model = load_description(package)
            noise = np.concatenate([np.full((1, 1, 256, 256), v, np.float32) for v in (a, b)], 1)
            inputs = {"raw": raw[None].astype(np.float32), "noise_model": noise}
            h = halo * info.config.scale
            for mode, blocks in (("blockwise", 10), ("one block", None)):
                t = time.perf_counter()
                res = predict(model=model, inputs=inputs, blocksize_parameter=blocks)
                seconds = time.perf_counter() - t
                y = res.members["restored"].data.to_numpy()[0, 0]
                grey = np.clip(np.rint(y * np.float32(hi - lo) + np.float32(lo)), 0, 255)
                d = np.abs(got - grey.astype(int))
                print(f"{name} {mode}: max {d.max()} grey levels, {100 * (d > 0).mean():.1f} % "
                      f"of pixels differ; beyond the halo ({halo} px) max {d[h:-h, h:-h].max()}, "
                      f"{100 * (d[h:-h, h:-h] > 0).mean():.1f} %; predict {seconds:.1f} s")
            print(f"{name}: export-model {t_export:.1f} s, run {t_run:.1f} s, noise a={a:.4g} "
                  f"b={b:.4g}, range {lo:g}-{hi:g}")


if __name__ == "__main__":
    main()
