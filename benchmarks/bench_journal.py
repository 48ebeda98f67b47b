"""How long a resume spends reading a big journal: 512,000 finished block tasks (the CPU plan
of a 1 Tvoxel volume), each line with its data-consistency note, read by ``Journal.done``
(what ``--resume`` reads first) and ``Journal.notes`` (what the end of a run reads).

    python benchmarks/bench_journal.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pssr_volume.consistency import Residual
from pssr_volume.io.journal import Journal


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "out.ome.zarr")
        journal.dir.mkdir(parents=True)
        note = Residual(1.234, 5.678, 16_777_216).note()
        for worker in range(4):  # one log per worker process, as a run writes them
            lines = [f"block {z}.{y}.{x}\t{note}\n" for z in range(worker, 500, 4)
                     for y in range(32) for x in range(32)]
            (journal.dir / f"worker{worker}.log").write_text("".join(lines))
        t0 = time.perf_counter()
        done = journal.done()
        t1 = time.perf_counter()
        notes = journal.notes()
        t2 = time.perf_counter()
        size = sum(f.stat().st_size for f in journal.dir.iterdir()) / 1e6
    print(f"{len(done):,} tasks in {size:.1f} MB of journal: done() {t1 - t0:.2f} s, "
          f"notes() {t2 - t1:.2f} s ({len(notes):,} notes)")


if __name__ == "__main__":
    main()
