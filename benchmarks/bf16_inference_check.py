"""May a model restore in bf16? The two measurements behind ``ModelConfig.bf16_inference``.

1. Blockwise == whole in bf16: the engine's blockwise output against one whole-volume
   inference of the same bf16 model, at most 1 grey level apart (``crop`` blending).
2. Hold-out quality: CARE-normalised PSNR of the bf16 restoration within 0.05 dB of the
   float32 one, on a hold-out crop degraded with each preset.

Also the speed of both (output Mpx/s through the engine, ``--cluster sync``). Only meaningful
on a CPU (or GPU) that computes bf16 natively; elsewhere bf16 is never used for inference.
With ``--write OUT`` and both checks passed, writes a copy of the model that allows bf16.

    python benchmarks/bf16_inference_check.py --model results/x/model.safetensors \\
        --hr ../shared/data/holdout_drosophila_vnc_sstem_stack2/raw --preset pssr-em \\
        --preset pssr2 --preset integrate-read
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from whole_volume import predict_whole  # noqa: E402

from pssr_volume.bundled import resolve_model  # noqa: E402
from pssr_volume.config import RunConfig  # noqa: E402
from pssr_volume.crappify.presets import get_preset  # noqa: E402
from pssr_volume.io.inputs import open_input  # noqa: E402
from pssr_volume.io.tiff import write_tiff_stack  # noqa: E402
from pssr_volume.metrics import volume_metrics  # noqa: E402
from pssr_volume.model import load_model, save_model  # noqa: E402
from pssr_volume.plan import make_plan  # noqa: E402
from pssr_volume.precision import cpu_has_bf16  # noqa: E402
from pssr_volume.run import run  # noqa: E402

PSNR_SLACK_DB = 0.05
GREY_SLACK = 1


def _restore(lr: Path, model: Path, out: Path) -> tuple[np.ndarray, float, RunConfig]:
    cfg = RunConfig(input=lr, output=out, model=model, cluster="sync", progress=False,
                    block_shape=(1, 256, 256), overwrite=True)  # several blocks per section
    stats = run(cfg)
    return zarr.open_array(str(out / "0"))[:], stats.mvoxels_per_second, cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--hr", type=Path, required=True)
    p.add_argument("--preset", action="append", default=[])
    p.add_argument("--z", default="0:4", help="HR sections START:STOP")
    p.add_argument("--crop", type=int, default=512, help="HR crop edge (central)")
    p.add_argument("--write", type=Path, help="save a bf16-allowed copy here if both pass")
    p.add_argument("--voxel", default="50,18.4,18.4",
                   help="voxel size of the degraded input, nm (Z,Y,X): the model's own kind")
    args = p.parse_args()
    presets = args.preset or ["pssr-em", "pssr2"]
    config, module = load_model(resolve_model(args.model))
    vol = open_input(args.hr)
    z0, z1 = (int(v) for v in args.z.split(":"))
    crop = min(args.crop, *(n // 4 * 4 for n in vol.shape[1:]))
    y0, x0 = ((n - crop) // 2 // 4 * 4 for n in vol.shape[1:])
    hr = vol.read((slice(z0, z1), slice(y0, y0 + crop), slice(x0, x0 + crop)))
    report: dict = {"model": str(args.model), "native_bf16_here": cpu_has_bf16(), "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32 = save_model(work / "fp32.safetensors", module,
                          config.model_copy(update={"bf16_inference": False}))
        bf16 = save_model(work / "bf16.safetensors", module,
                          config.model_copy(update={"bf16_inference": True}))
        worst_grey, worst_psnr = 0, 0.0
        for preset in presets:
            pipe = get_preset(preset, config.scale)
            lr = np.stack([np.clip(np.rint(pipe(s.astype(np.float32) / 255,
                                                np.random.default_rng([0, k])) * 255), 0, 255)
                           for k, s in enumerate(hr)]).astype(np.uint8)
            lr_path = work / f"{preset}.tif"
            voxel = tuple(float(v) for v in args.voxel.split(","))
            write_tiff_stack(lr_path, iter(lr), lr.shape, "uint8", voxel)  # type: ignore[arg-type]
            a, rate_a, _ = _restore(lr_path, fp32, work / "a.ome.zarr")
            b, rate_b, cfg = _restore(lr_path, bf16, work / "b.ome.zarr")
            whole = predict_whole(make_plan(cfg.model_copy(update={"output": work / "x"})).job)
            grey = int(np.abs(b.astype(int) - whole.astype(int)).max())
            pa, pb = volume_metrics(a, hr)["psnr"], volume_metrics(b, hr)["psnr"]
            worst_grey, worst_psnr = max(worst_grey, grey), max(worst_psnr, abs(pa - pb))
            row = {"preset": preset, "blockwise_vs_whole_max_grey_bf16": grey,
                   "psnr_fp32": round(pa, 3), "psnr_bf16": round(pb, 3),
                   "psnr_diff_db": round(pb - pa, 3), "out_mpx_per_s_fp32": round(rate_a, 2),
                   "out_mpx_per_s_bf16": round(rate_b, 2)}
            report["cases"].append(row)
            print(json.dumps(row), flush=True)
        ok = worst_grey <= GREY_SLACK and worst_psnr <= PSNR_SLACK_DB
        report["passes"] = ok
        print(json.dumps({"passes": ok, "worst_grey": worst_grey,
                          "worst_psnr_diff_db": round(worst_psnr, 3)}), flush=True)
        if args.write and ok:
            save_model(args.write, module, config.model_copy(update={"bf16_inference": True}))
            print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
