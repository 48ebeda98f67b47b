"""The output chunk codecs side by side: speed, size, and whether a flipped bit is caught.

For each chunk layout pssr-volume can write (NGFF 0.5: zarr v3 with zstd then crc32c; NGFF
0.4: zarr v2 with gzip, and, for comparison, zarr v2 with zstd as outputs had before), one
training volume is written through tensorstore and read back (one thread each way), then one
chunk file is damaged ``--flips`` times, one random bit each time, and read again: a flip is
*caught* when the read fails, *silent* when it returns different voxels.

Usage::

    python benchmarks/bench_chunk_codecs.py --out benchmarks/results/chunk-codecs.txt
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numcodecs
import numpy as np
import tensorstore as ts
import tifffile
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOLUME = DATA / "flyem_medulla_fibsem_10nm" / "training_sample1.tif"
CHUNK = (32, 128, 128)


def create(path: Path, layout: str, shape: tuple[int, ...], dtype: str) -> Path:
    group = zarr.open_group(str(path), mode="w", zarr_format=3 if layout == "v3-zstd-crc32c" else 2)
    if layout == "v3-zstd-crc32c":
        group.create_array("0", shape=shape, chunks=CHUNK, dtype=dtype,
                           compressors=(ZstdCodec(level=1), Crc32cCodec()))
        return path / "0" / "c" / "0" / "0" / "0"
    codec = numcodecs.GZip(level=1) if layout == "v2-gzip" else numcodecs.Zstd(level=1)
    group.create_array("0", shape=shape, chunks=CHUNK, dtype=dtype, compressors=codec,
                       chunk_key_encoding={"name": "v2", "separator": "/"})
    return path / "0" / "0" / "0" / "0"


def open_array(path: Path) -> ts.TensorStore:
    driver = "zarr3" if (path / "0" / "zarr.json").exists() else "zarr"
    return ts.open({"driver": driver, "kvstore": {"driver": "file", "path": str(path / "0")},
                    "context": {"data_copy_concurrency": {"limit": 1},
                                "cache_pool": {"total_bytes_limit": 0}}},
                   recheck_cached_data=True).result()


def measure(layout: str, vol: np.ndarray, root: Path, flips: int,
            rng: np.random.Generator) -> str:
    path = root / layout
    chunk_file = create(path, layout, vol.shape, str(vol.dtype))
    arr = open_array(path)
    t0 = time.perf_counter()
    arr.write(vol).result()
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = arr.read().result()
    read_s = time.perf_counter() - t0
    assert np.array_equal(back, vol)
    stored = sum(f.stat().st_size for f in (path / "0").rglob("*") if f.is_file()
                 and not f.name.startswith((".z", "zarr.json")))
    region = tuple(slice(0, min(c, s)) for c, s in zip(CHUNK, vol.shape))
    good = vol[region]
    original = chunk_file.read_bytes()
    caught = silent = 0
    for _ in range(flips):
        damaged = bytearray(original)
        damaged[int(rng.integers(len(damaged)))] ^= 1 << int(rng.integers(8))
        chunk_file.write_bytes(bytes(damaged))
        try:
            seen = open_array(path)[region].read().result()
        except ValueError:
            caught += 1
        else:
            silent += int(not np.array_equal(seen, good))
    chunk_file.write_bytes(original)
    mb = vol.nbytes / 1e6
    return (f"{layout:16s} write {mb / write_s:6.0f} MB/s  read {mb / read_s:6.0f} MB/s  "
            f"ratio {vol.nbytes / stored:4.2f}  flipped bits caught {caught}/{flips}, "
            f"silent {silent}/{flips}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flips", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    vol = np.ascontiguousarray(tifffile.imread(VOLUME))
    rng = np.random.default_rng(args.seed)
    lines = [f"input {VOLUME.name} {vol.shape} {vol.dtype}, chunks {CHUNK}, level 1, one thread"]
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("v3-zstd-crc32c", "v2-gzip", "v2-zstd"):
            lines.append(measure(layout, vol, Path(tmp), args.flips, rng))
            print(lines[-1], flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
