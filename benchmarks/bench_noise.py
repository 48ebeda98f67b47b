"""Speed of the noise estimator (:func:`pssr_volume.noise.estimate_noise`) on one section.

A run estimates the noise model once per volume from a fixed sample (docs/DESIGN.md section
4a), and training on every low-resolution tile, so it must stay cheap: about 0.06 s for a
1024 x 1024 section on one core. Moved here from the test suite, where a wall-clock bound
fails on a loaded machine and proves nothing on a fast one.

Usage::

    python benchmarks/bench_noise.py --size 1024 --repeats 3 --threads 1
    python benchmarks/bench_noise.py --limit 0.5      # exit status 1 when slower
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy import ndimage

from pssr_volume.noise import estimate_noise


def section(size: int, a: float = 1e-4, b: float = 0.01, seed: int = 0) -> np.ndarray:
    """A smooth section in [0.1, 0.9] with Poisson-Gaussian noise ``var = a + b * I``."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((size, size)), 6)
    clean = 0.1 + 0.8 * (f - f.min()) / (np.ptp(f) + 1e-12)
    noisy = rng.poisson(clean / b) * b + rng.normal(0, np.sqrt(a), clean.shape)
    return noisy.astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="section side in pixels")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--limit", type=float, default=None,
                        help="fail (exit status 1) when the best time exceeds this many s")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = section(args.size)
    model = estimate_noise(x)  # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        estimate_noise(x)
        times.append(time.perf_counter() - t)
    best = min(times)
    print(json.dumps({"size": args.size, "threads": args.threads, "best_s": round(best, 4),
                      "a": model.a, "b": model.b}))
    return 1 if args.limit is not None and best > args.limit else 0


if __name__ == "__main__":
    raise SystemExit(main())
