"""How long the dry run of the 1 Tvoxel example takes, and its peak resident memory: an empty
Zarr array of 1000 x 32768 x 32768 uint8 (metadata only) at 30 x 8 x 8 nm, planned for this
machine's CPUs and for an H100, each as its own ``pssr-volume`` process (what a user on a login
node runs). Issue 21 asks for at most 10 s and 400 MB each.

    python benchmarks/bench_plan.py [--repeat 3] [--out benchmarks/results/plan-teravoxel.txt]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zarr

CLI = str(Path(sys.executable).with_name("pssr-volume"))
PLANS = {"cpu": [], "cuda (H100)": ["--device", "cuda", "--gpu", "H100"]}


def dry_run(inp: str, out: str, flags: list[str]) -> tuple[float, float, str]:
    """Seconds, peak resident MB and stderr of one dry run in its own process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([CLI, "run", inp, out, "--voxel-size", "30,8,8", "--dry-run",
                             "--no-progress", *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed ({proc.returncode}):\n{err}")
    return seconds, usage.ru_maxrss / 1024, err  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()
    lines = [f"dry run of 1000x32768x32768 uint8 (empty Zarr), {os.cpu_count()} CPUs, "
             f"load {os.getloadavg()[0]:.1f}; best and worst of {args.repeat}"]
    with tempfile.TemporaryDirectory() as tmp:
        inp = str(Path(tmp) / "tvox.zarr")
        zarr.create_array(inp, shape=(1000, 32768, 32768), chunks=(1, 1024, 1024),
                          dtype="uint8", fill_value=0)
        for name, flags in PLANS.items():
            runs = [dry_run(inp, str(Path(tmp) / "o.ome.zarr"), flags)
                    for _ in range(args.repeat)]
            err = runs[-1][2]
            tasks = re.search(r"(\d+) Dask task\(s\) in all", err)
            files = re.search(r"in (\d+) data file\(s\)", err)
            secs, mbs = sorted(r[0] for r in runs), sorted(r[1] for r in runs)
            lines.append(f"{name:12s} {secs[0]:5.2f}-{secs[-1]:5.2f} s, "
                         f"{mbs[0]:4.0f}-{mbs[-1]:4.0f} MB peak resident; "
                         f"{tasks.group(1) if tasks else '?'} tasks, "
                         f"{files.group(1) if files else '?'} data files")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
