"""Training steps/s and inference output Mpx/s on this machine, float32 against bf16 autocast.

Training: the loop's own step (channels-last module and input, AdamW, the SSIM + L1 loss) on a
fixed random batch, so batch making is left out: this is the network's cost. Inference: the
engine's predictor path (channels-last, inference mode) on one tile. Also, for inference,
the largest difference bf16 makes to the output in grey levels (0-255) of a trained model on
real data, and whether bf16 is native here (AVX512-BF16 or AMX) or emulated.

    python benchmarks/bench_train.py --threads 2
    python benchmarks/bench_train.py --model results/train/x/model.safetensors

Writes one JSON line per measurement to stdout and, with ``--out``, a JSON file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from pssr_volume.config import ModelConfig
from pssr_volume.model import load_model
from pssr_volume.nets.registry import build
from pssr_volume.precision import autocast, cpu_has_bf16
from pssr_volume.train.losses import loss_fn


def _module(args: argparse.Namespace) -> torch.nn.Module:
    if args.model:
        return load_model(args.model)[1]
    cfg = ModelConfig(name="bench", architecture=args.architecture, in_slices=args.in_slices,
                      noise_input=args.noise_input,
                      arch_args=json.loads(args.arch_args) if args.arch_args else {})
    return build(cfg)


def train_rate(module: torch.nn.Module, dtype: torch.dtype | None, args: argparse.Namespace
               ) -> float:
    """Training steps per second."""
    module = module.train().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    lr_tile = args.tile // 4
    channels = module.head.in_channels if hasattr(module, "head") else args.in_slices
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, channels, lr_tile, lr_tile, generator=g)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.rand(args.batch_size, 1, args.tile, args.tile, generator=g)

    def step() -> None:
        with autocast("cpu", dtype):
            pred = module(x)
        loss = loss_fn("ssim", pred.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps / (time.perf_counter() - t0)


@torch.inference_mode()
def infer(module: torch.nn.Module, dtype: torch.dtype | None, x: torch.Tensor
          ) -> tuple[float, np.ndarray]:
    """Output Mpx/s on ``x`` and the output."""
    module = module.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    x = x.contiguous(memory_format=torch.channels_last)
    with autocast("cpu", dtype):
        module(x)
    t0 = time.perf_counter()
    n = 3
    for _ in range(n):
        with autocast("cpu", dtype):
            out = module(x).float()
    rate = n * out[:, 0].numel() / (time.perf_counter() - t0) / 1e6
    return rate, out.numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--architecture", default="pssr-fast")
    p.add_argument("--arch-args", default="", help="JSON, e.g. '{\"width\": 48}'")
    p.add_argument("--in-slices", type=int, default=1)
    p.add_argument("--noise-input", action="store_true")
    p.add_argument("--model", type=Path, help="A trained model (inference differences).")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--tile", type=int, default=192, help="HR training tile edge")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--infer-tile", type=int, default=512, help="LR inference tile edge")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    base = _module(args)
    channels = base.head.in_channels if hasattr(base, "head") else args.in_slices
    x = torch.rand(1, channels, args.infer_tile, args.infer_tile,
                   generator=torch.Generator().manual_seed(1))
    outs = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        module = _module(args)
        module.load_state_dict(base.state_dict())
        rate = train_rate(module, dtype, args)
        module.load_state_dict(base.state_dict())
        mpx, outs[name] = infer(module, dtype, x)
        row = {"precision": name, "train_steps_per_s": round(rate, 3),
               "batch": f"{args.batch_size}x{args.tile}px", "infer_out_mpx_per_s": round(mpx, 3),
               "threads": torch.get_num_threads(), "native_bf16": cpu_has_bf16()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    diff = float(np.abs(outs["fp32"] - outs["bf16"]).max() * 255)
    summary = {"train_speedup_bf16": round(rows[1]["train_steps_per_s"]
                                           / rows[0]["train_steps_per_s"], 2),
               "infer_speedup_bf16": round(rows[1]["infer_out_mpx_per_s"]
                                           / rows[0]["infer_out_mpx_per_s"], 2),
               "infer_max_diff_grey_levels": round(diff, 2),
               "weights": str(args.model) if args.model else "untrained"}
    print(json.dumps(summary), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
