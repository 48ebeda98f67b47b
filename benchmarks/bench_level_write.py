"""The CPU of writing one block's level-0 shard through tensorstore: the source copied into
tensorstore's chunk buffers first (its default) against encoded from the source in place
(``can_reference_source_data_indefinitely``, what :func:`pssr_volume.io.levels.start_write`
asks for), alternating in one process on the same data.

The block is what a GPU hands back for the stand-in of benchmarks/bench_write.py: two demo
sections repeated 4 x 4 (2 x 4096 x 4096 uint8), written into an output made by the engine's
own :func:`pssr_volume.io.ome_zarr.create_output` (chunks 2 x 256 x 256, zstd-1 and crc32c,
one shard per block), every block into a shard of its own. CPU seconds are this process's
(tensorstore's codec threads included) over ``--blocks`` blocks, best of ``--repeat`` rounds.

    python benchmarks/bench_level_write.py --blocks 10 --repeat 5
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorstore as ts

from pssr_volume.demo import make_demo_volume
from pssr_volume.io.ome_zarr import create_output
from pssr_volume.pyramid import Level

CHUNK, BLOCK = (2, 256, 256), (2, 4096, 4096)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_blocks(folder: Path, block: np.ndarray, blocks: int, reference: bool
                 ) -> tuple[float, float]:
    """Wall and CPU seconds a block, writing ``blocks`` fresh copies of ``block``."""
    level = Level("0", (BLOCK[0] * blocks, *BLOCK[1:]), (50.0, 4.6, 4.6), (1, 1, 1))
    out = folder / f"{'reference' if reference else 'copy'}-{time.monotonic_ns()}.ome.zarr"
    create_output(out, (level,), CHUNK, "uint8", shards=(BLOCK,))
    # opened as pssr_volume.io.levels opens a level for writing: every chunk stored
    store = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out / "0")},
                     "store_data_equal_to_fill_value": True}, open=True, write=True).result()
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    for k in range(blocks):
        data = block.copy()  # a new array a block, as the engine's
        region = store[k * BLOCK[0]:(k + 1) * BLOCK[0]]
        if reference:
            region.write(data, can_reference_source_data_indefinitely=True).result()
        else:
            region.write(data).result()
    return (time.perf_counter() - t0) / blocks, (_cpu_seconds() - cpu0) / blocks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--blocks", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    sections, _ = make_demo_volume((2, 1024, 1024), seed=0)
    block = np.ascontiguousarray(np.repeat(np.repeat(sections, 4, axis=1), 4, axis=2))
    best = {False: (np.inf, np.inf), True: (np.inf, np.inf)}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for reference in (False, True):
                wall, cpu = write_blocks(Path(tmp), block, args.blocks, reference)
                best[reference] = (min(best[reference][0], wall), min(best[reference][1], cpu))
                print(f"{'in place' if reference else 'copied  '}: {1e3 * wall:6.1f} ms wall, "
                      f"{1e3 * cpu:6.1f} ms CPU a block")
    (cw, cc), (rw, rc) = best[False], best[True]
    print(f"best of {args.repeat}: copied {1e3 * cc:.1f} ms CPU ({1e3 * cw:.1f} wall), in place "
          f"{1e3 * rc:.1f} ms CPU ({1e3 * rw:.1f} wall) a {'x'.join(map(str, BLOCK))} block; "
          f"in place / copied CPU {rc / cc:.2f}")


if __name__ == "__main__":
    main()
