"""How long ``--resume`` takes to start on an output whose journal holds 500,000 finished
tasks: an output of 512,000 blocks (1 x 32 x 32 output voxels each, on an empty input of
500 x 256 x 256 uint8 restored x4 by the ``pointwise`` stand-in) and 160,000 later pyramid
tasks, all recorded as finished except ``--left`` blocks, each block's line with its
data-consistency note as a run writes them. The journal is written directly (no run makes
it); ``pssr-volume run --resume`` is then timed as a process on a local cluster: from launch
until it starts (it plans, reads the journal, starts the cluster, finds the unfinished blocks
and shows its progress bar as it submits the first) and until it exits (the blocks run, the
output completed). Issue 21 asks that it start within 10 s on a local disk.

    python benchmarks/bench_resume.py [--left 2] [--workers 1] [--out FILE]

tests/test_resume_large_journal.py runs the same output with ``--cluster sync``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zarr

INPUT_SHAPE = (500, 256, 256)
BLOCK = (1, 32, 32)
CLI = str(Path(sys.executable).with_name("pssr-volume"))


def run_args(root: Path) -> list[str]:
    """The ``run`` arguments of the output :func:`build` makes (``--resume`` not included)."""
    return [str(root / "in.zarr"), str(root / "out.ome.zarr"), "--model",
            str(root / "pointwise.safetensors"), "--block-shape", ",".join(map(str, BLOCK)),
            "--voxel-size", "30,8,8", "--no-progress"]


def build(root: Path, left: set[tuple[int, int, int]]) -> int:
    """Make, under ``root``, the input, the model and an output whose journal records every
    task of its plan finished except the blocks ``left``; returns the tasks recorded."""
    from pssr_volume.config import ModelConfig, NormalizationConfig, RunConfig
    from pssr_volume.consistency import Residual
    from pssr_volume.io.journal import Journal
    from pssr_volume.io.ome_zarr import open_output
    from pssr_volume.model import save_model
    from pssr_volume.nets.fast import Pointwise
    from pssr_volume.pyramid import task_regions
    from pssr_volume.run import plan_run
    from pssr_volume.tasks import block_key, pyramid_key

    save_model(root / "pointwise.safetensors", Pointwise(),
               ModelConfig(name="pointwise", architecture="pointwise",
                           normalization=NormalizationConfig(mode="fixed", low=0, high=255)))
    zarr.create_array(str(root / "in.zarr"), shape=INPUT_SHAPE, chunks=(1, 256, 256),
                      dtype="uint8", fill_value=7)
    args = run_args(root)
    config = RunConfig(input=args[0], output=args[1], model=args[3], block_shape=BLOCK,
                       voxel_size=(30.0, 8.0, 8.0), cluster="sync")
    plan = plan_run(config)
    job = plan.job
    open_output(config.output, plan.layout, {**plan.provenance, "torch_threads": 0})
    note = "\t" + Residual(1.234, 5.678, 16_384).note() + "\n"
    lines = [block_key(i) + note for i in job.grid.indices() if i not in left]
    lines += [pyramid_key(st.first, r) + "\n" for st in job.stages[1:]
              for r in task_regions(job.levels[st.first].shape, st.task)]
    journal = Journal(config.output)
    journal.dir.mkdir(parents=True, exist_ok=True)
    for w in range(4):  # one log per worker process, as a run writes them
        (journal.dir / f"worker{w}.log").write_text("".join(lines[w::4]))
    return len(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--left", type=int, default=2, help="blocks not recorded (the last ones)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="also write the result here")
    args = ap.parse_args()
    counts = (INPUT_SHAPE[0], INPUT_SHAPE[1] * 4 // BLOCK[1], INPUT_SHAPE[2] * 4 // BLOCK[2])
    last = [(z, y, x) for z in range(counts[0]) for y in range(counts[1])
            for x in range(counts[2])][-args.left:]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        tasks = build(root, set(last))
        made = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in
                   (root / "out.ome.zarr" / ".pssr-volume" / "journal").iterdir()) / 1e6
        t0 = time.perf_counter()
        proc = subprocess.Popen([CLI, "run", *run_args(root), "--resume", "--cluster", "local",
                                 "--workers", str(args.workers), "--progress"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        chunks, started = [], None  # the progress bar appears as the first task is submitted
        while chunk := os.read(proc.stderr.fileno(), 65536):
            chunks.append(chunk)
            if started is None and b"restoring:" in b"".join(chunks[-2:]):
                started = time.perf_counter() - t0
        err = b"".join(chunks).decode()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the resume failed:\n{err}")
    done = next(line for line in err.splitlines() if line.startswith("done:"))
    text = (f"journal of {tasks:,} finished tasks ({size:.1f} MB, written in {made:.1f} s), "
            f"{args.left} block(s) left; {os.cpu_count()} CPUs, load "
            f"{os.getloadavg()[0]:.1f}\n--resume on a local cluster of {args.workers} worker(s): "
            f"launch to the first task submitted (the progress bar) {started or 0:.1f} s, to exit "
            f"{seconds:.1f} s, {usage.ru_maxrss / 1024:.0f} MB peak resident (the driver)\n"
            f"{done}")
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
