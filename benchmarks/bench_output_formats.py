"""The two output formats side by side: ``convert`` of one volume into OME-Zarr (NGFF 0.5) and
into neuroglancer precomputed (sharded), with the same blocks and pyramid, then ``verify`` of
each, the bytes on disk, and how many of ``--flips`` single-bit flips in one precomputed
shard file ``verify`` catches.

Each command runs in-process on ``--cluster sync`` (one task at a time), so the seconds are
the formats' own, not the scheduler's. The volume is the FIB-SEM training volume from
../shared/data (250 x 250 x 250 uint8), tiled ``--tile`` times in y and x.

Usage::

    python benchmarks/bench_output_formats.py --out benchmarks/results/output-formats.txt
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import zarr

from pssr_volume.cli import main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOLUME = DATA / "flyem_medulla_fibsem_10nm" / "training_sample1.tif"
ARGS = ["--voxel-size", "10,10,10", "--block-shape", "32,512,512", "--chunk-shape",
        "16,128,128", "--cluster", "sync", "--no-progress"]


def timed(*argv: object) -> tuple[float, int, str]:
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return time.perf_counter() - t0, code, (out.getvalue() + err.getvalue()).strip()


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def flips(out: Path, vol: np.ndarray, n: int, rng: np.random.Generator) -> tuple[int, int]:
    """(caught, harmless) of ``n`` single-bit flips, each in a fresh copy of one shard;
    harmless: not caught, and level 0 reads back equal to ``vol``."""
    from pssr_volume.io.precomputed_chunks import read_region

    shard = sorted((out / "0").iterdir())[0]
    original = shard.read_bytes()
    caught = harmless = 0
    for _ in range(n):
        data = bytearray(original)
        bit = int(rng.integers(len(data) * 8))
        data[bit // 8] ^= 1 << (bit % 8)
        shard.write_bytes(bytes(data))
        _, code, _ = timed("verify", out)
        caught += code == 1
        if code == 0:  # not caught: harmless only if every voxel reads as it was
            box = tuple((0, n) for n in vol.shape)
            harmless += bool(np.array_equal(read_region(str(out), "0", box), vol))
    shard.write_bytes(original)
    return caught, harmless


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=4, help="copies of the volume in y and x")
    parser.add_argument("--flips", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    vol = np.tile(tifffile.imread(VOLUME)[:128], (1, args.tile, args.tile))
    lines = [f"volume {'x'.join(map(str, vol.shape))} uint8 ({vol.nbytes / 1e6:.0f} MB), "
             f"blocks 32x512x512, chunks 16x128x128, one process"]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "in.zarr"
        array = zarr.create_array(str(src), shape=vol.shape, chunks=(32, 512, 512), dtype="uint8")
        array[...] = vol
        for fmt in ("ome-zarr", "precomputed"):
            out = root / f"out.{fmt}"
            seconds, code, text = timed("convert", src, out, *ARGS, "--output-format", fmt)
            assert code == 0, text
            verify_s, code, text = timed("verify", out)
            assert code == 0, text
            lines.append(f"{fmt:12s} convert {seconds:6.2f} s ({vol.nbytes / 1e6 / seconds:5.1f} "
                         f"MB/s), verify {verify_s:6.2f} s, {size(out) / 1e6:6.1f} MB on disk; "
                         f"{text.splitlines()[-1].split(': ', 1)[1]}")
        caught, harmless = flips(root / "out.precomputed", vol, args.flips, rng)
        lines.append(f"precomputed: {args.flips} single-bit flips in one shard file: {caught} "
                     f"caught by verify; of the {args.flips - caught} not caught, {harmless} left "
                     "every voxel as it was")
        shutil.rmtree(root / "out.precomputed")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main_()
