"""A block's finishing pass: numpy slab by slab against the compiled loop (fused_finish.py).

For a block of the network's float32 output (and for the same voxels already rounded to
uint8, as a GPU hands them back), alternates the two paths of
:func:`pssr_volume.stored_voxels.stored_voxels` in this process, one thread, on the same
array: the stored voxels, the 1 x 2 x 2 pooled level and the 4 x 4 cell sums of a x4 run.
Reports the best of ``--repeat`` rounds of each, in ms of CPU a block, next to a plain sum
over the float32 output (reading it once), and checks the bytes are equal.

Usage::

    python benchmarks/bench_finish.py --repeat 9
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pssr_volume import fused_finish
from pssr_volume.allocator import tune_allocator
from pssr_volume.stored_voxels import stored_voxels


@contextlib.contextmanager
def numpy_only() -> Iterator[None]:
    """The numpy path: the compiled loop declines every block meanwhile."""
    finish = fused_finish.finish
    fused_finish.finish = lambda *args: None  # type: ignore[assignment]
    try:
        yield
    finally:
        fused_finish.finish = finish


def cpu_ms(fn: Callable[[], Any]) -> float:
    t0 = time.process_time()
    fn()
    return 1e3 * (time.process_time() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="2,4096,4096", help="the block's output Z,Y,X")
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    tune_allocator()  # as a block task does
    shape = tuple(int(v) for v in args.shape.split(","))
    rng = np.random.default_rng(0)
    values = rng.normal(0.5, 0.2, size=shape).astype(np.float32)
    rounded = stored_voxels(values, 10.0, 200.0, "uint8", None).data
    cases = {"float32 output": values, "rounded on a GPU (uint8)": rounded}
    best: dict[str, dict[str, float]] = {name: {} for name in cases}
    for name, data in cases.items():
        def run(data: np.ndarray = data) -> Any:
            return stored_voxels(data, 10.0, 200.0, "uint8", (1, 2, 2), 4)

        fused = run()
        with numpy_only():
            plain = run()
        assert all(np.array_equal(a, b) for a, b in zip(fused, plain)), name
        for _ in range(args.repeat):  # alternating: both see the same moments of the machine
            with numpy_only():
                t = cpu_ms(run)
            best[name]["numpy"] = min(best[name].get("numpy", t), t)
            t = cpu_ms(run)
            best[name]["compiled"] = min(best[name].get("compiled", t), t)
    read = min(cpu_ms(values.sum) for _ in range(args.repeat))
    results = {"shape": list(shape), "repeat": args.repeat, "sum_of_float32_ms": round(read, 1),
               "cases": {k: {m: round(v, 1) for m, v in d.items()} for k, d in best.items()}}
    for name, d in best.items():
        print(f"{name}: numpy {d['numpy']:.1f} ms, compiled {d['compiled']:.1f} ms of CPU a "
              f"{'x'.join(map(str, shape))} block ({d['numpy'] / d['compiled']:.1f}x)")
    print(f"a plain sum over the float32 output: {read:.1f} ms; the bytes are equal")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
