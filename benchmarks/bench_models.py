"""Architecture cost: parameters, GFLOP per output megapixel and forward throughput.

For each architecture (default: ``pssr-fast`` and ``pssr-resunet`` with their default
arguments, and ``pssr-resunet`` with self-attention), in one run on the same machine:

* parameters;
* GFLOP per output megapixel (``torch.utils.flop_counter``; convolutions, matrix products
  and attention, 2 FLOP per multiply-add) on ``--tile``-px input tiles;
* forward throughput in output megapixels per second (best of ``--repeats`` after one
  warm-up; random input, ``--batch`` tiles, fp32, ``inference_mode``).

Usage::

    python benchmarks/bench_models.py --tile 128 --batch 4 --threads 2 \
        --json benchmarks/results/models-cpu.json
    python benchmarks/bench_models.py --device cuda --tile 256 --batch 16   # on a GPU

A smoke run (small tiles, one repeat) takes seconds: ``--tile 32 --batch 1 --repeats 1``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from flops import count_params, gflop_per_out_mpx, make, throughput

DEFAULT = [
    ("pssr-fast", {}),
    ("pssr-resunet", {}),
    ("pssr-resunet", {"self_attention": True}),
]


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", action="append", default=None, metavar="NAME[:JSON]",
                   help="architecture and optional JSON arguments, e.g. "
                        "'pssr-fast:{\"width\": 64}' (repeatable; default: the three above)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--in-slices", type=int, default=1)
    p.add_argument("--tile", type=int, default=128, help="input tile edge (px)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    archs = DEFAULT
    if a.arch:
        archs = []
        for item in a.arch:
            name, _, raw = item.partition(":")
            archs.append((name, json.loads(raw) if raw else {}))
    rows = []
    header = (f"{'architecture':<14} {'args':<26} {'params':>10} {'GFLOP/out-Mpx':>14} "
              f"{'out-Mpx/s':>10}")
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), device {a.device}, tile {a.tile} -> "
          f"{a.tile * a.scale} px, batch {a.batch}")
    print(header)
    for name, args in archs:
        module = make(name, a.scale, a.in_slices, args)
        row = {
            "architecture": name, "arch_args": args, "scale": a.scale,
            "in_slices": a.in_slices, "params": count_params(module),
            "gflop_per_out_mpx": round(gflop_per_out_mpx(module, a.in_slices, a.scale, a.tile),
                                       1),
            "out_mpx_per_s": round(throughput(module, a.in_slices, a.scale, a.tile, a.batch,
                                              a.repeats, a.device), 4),
            "tile": a.tile, "batch": a.batch, "device": a.device,
            "threads": torch.get_num_threads(),
        }
        rows.append(row)
        print(f"{name:<14} {json.dumps(args):<26} {row['params']:>10,} "
              f"{row['gflop_per_out_mpx']:>14.1f} {row['out_mpx_per_s']:>10.3f}", flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
