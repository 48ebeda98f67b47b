"""Hostile-input sweep: run ``pssr-volume`` on ~40 bad inputs and flags, one process each.

The house rule: bad input ends as ONE line on stderr (``Error: ...``) and a non-zero
exit (2 for a user error), fast, never a traceback, an "internal error" or a hang, and
the input is never modified. Every case runs ``.venv/bin/pssr-volume`` as a subprocess
with a timeout, and prints one line::

    case name                      exit  seconds  first Error line (or first stderr line)

``HANG`` marks a case killed at the timeout; ``!`` marks a case that breaks the rule
(internal error, traceback, more than one error line, exit 0 or 1 where 2 is expected,
or a failed case that left an output behind, unless its error keeps finished blocks for
``--resume``). Lines before the error are the run's summary (input, model, output, blocks).
The cases create their inputs in a temporary folder; a digest of those inputs before
and after the sweep checks that none was modified. Nothing is asserted: the sweep
reports (some cases belong to work in progress).

Usage, from the repository root::

    python benchmarks/hostile_sweep.py [--timeout 60] [--only fifo]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tifffile
import zarr

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "pssr-volume"


def make_inputs(d: Path) -> dict[str, int]:
    """Write every input the cases use; returns the ports of the fake schedulers."""
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 255, (4, 64, 64), dtype=np.uint8)
    tifffile.imwrite(d / "vol.tif", vol, imagej=True, resolution=(1 / 18.4, 1 / 18.4),
                     metadata={"spacing": 50.0, "unit": "nm", "axes": "ZYX"})
    tifffile.imwrite(d / "tiny.tif", vol[:2, :3, :3], imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(d / "f64.tif", rng.random((2, 32, 32)), photometric="minisblack")
    tifffile.imwrite(d / "mask.tif", vol > 128)
    zarr.open_array(d / "mask.zarr", mode="w", shape=vol.shape, dtype=bool)[:] = vol > 128
    (d / "garbage.tif").write_bytes(b"II*\x00" + b"\xff" * 100)
    (d / "empty.tif").write_bytes(b"")
    (d / "text.tif").write_text("this is not a TIFF\n" * 10)
    data = (d / "vol.tif").read_bytes()
    (d / "truncated.tif").write_bytes(data[: len(data) // 2])
    # compressed, with one section's data garbled: only a block task can find it
    tifffile.imwrite(d / "z.tif", np.repeat(vol, 10, axis=0), compression="zlib",
                     photometric="minisblack")
    raw = bytearray((d / "z.tif").read_bytes())
    with tifffile.TiffFile(d / "z.tif") as tf:
        page = tf.pages[6]
        for off, n in zip(page.dataoffsets, page.databytecounts):  # type: ignore[union-attr]
            raw[off:off + n] = b"\x07" * n
    (d / "z.tif").unlink()
    (d / "corrupt_zlib.tif").write_bytes(bytes(raw))
    (d / "noimages").mkdir()
    (d / "noimages" / "readme.txt").write_text("no slices here")
    (d / "emptydir").mkdir()
    (d / "slices").mkdir()
    for z in range(3):
        tifffile.imwrite(d / "slices" / f"{z + 1}.tif", vol[z])
    (d / "fifo_slices").mkdir()
    tifffile.imwrite(d / "fifo_slices" / "1.tif", vol[0])
    os.mkfifo(d / "fifo_slices" / "0.tif")
    os.mkfifo(d / "fifo.tif")
    os.mkfifo(d / "fifo.safetensors")
    (d / "notmodel.safetensors").write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    (d / "emptymodel.safetensors").write_bytes(b"")
    (d / "existing.ome.zarr").mkdir()
    (d / "existing.ome.zarr" / "zarr.json").write_text("{}")
    (d / "file").write_text("a file, not a folder")
    os.symlink(d / "loop_b", d / "loop_a.tif")
    os.symlink(d / "loop_a.tif", d / "loop_b")
    return {"silent": _silent_listener(), "http": _http_server(d)}


def _silent_listener() -> int:
    sock = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            conns.append(sock.accept()[0])  # and never say a word

    threading.Thread(target=accept, daemon=True).start()
    return int(sock.getsockname()[1])


def _http_server(d: Path) -> int:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


def cases(ports: dict[str, int]) -> list[tuple[str, list[str], int]]:
    """(name, arguments, expected exit status) of every case; run in the input folder."""
    sync = ["--cluster", "sync", "--no-progress"]
    out = "out.ome.zarr"
    return [
        ("missing input (run)", ["run", "missing.tif", out, *sync], 2),
        ("missing input (info)", ["info", "missing.tif"], 2),
        ("unknown flag", ["run", "vol.tif", out, "--no-such-flag"], 2),
        ("bad --block-shape", ["run", "vol.tif", out, "--block-shape", "2,x,4", *sync], 2),
        ("zero --block-shape", ["run", "vol.tif", out, "--block-shape", "0,256,256", *sync], 2),
        ("negative --halo", ["run", "vol.tif", out, "--halo", "-1,-1", *sync], 2),
        ("zero --voxel-size", ["run", "vol.tif", out, "--voxel-size", "0,0,0", *sync], 2),
        ("zero --batch-size", ["run", "vol.tif", out, "--batch-size", "0", *sync], 2),
        ("FIFO input (run)", ["run", "fifo.tif", out, *sync], 2),
        ("FIFO input (info)", ["info", "fifo.tif"], 2),
        ("FIFO slice in a TIFF folder", ["info", "fifo_slices"], 2),
        ("FIFO model file (info)", ["info", "fifo.safetensors"], 2),
        ("/dev/zero input", ["info", "/dev/zero"], 2),
        ("symlink loop input", ["info", "loop_a.tif"], 2),
        ("garbage TIFF (info)", ["info", "garbage.tif"], 2),
        ("garbage TIFF (run)", ["run", "garbage.tif", out, *sync], 2),
        ("empty file", ["run", "empty.tif", out, *sync], 2),
        ("text file named .tif", ["info", "text.tif"], 2),
        ("truncated TIFF", ["run", "truncated.tif", out, *sync], 2),
        ("corrupt zlib section (run)", ["run", "corrupt_zlib.tif", out, *sync], 2),
        ("folder without images", ["run", "noimages", out, *sync], 2),
        ("empty folder", ["info", "emptydir"], 2),
        ("bool TIFF (run)", ["run", "mask.tif", out, *sync], 2),
        ("bool zarr (convert)", ["convert", "mask.zarr", out, "--no-progress"], 2),
        ("existing output", ["run", "vol.tif", "existing.ome.zarr", *sync], 2),
        ("--resume with --overwrite", ["run", "vol.tif", out, "--resume", "--overwrite", *sync],
         2),
        ("output inside input folder", ["run", "slices", "slices/out.ome.zarr", *sync], 2),
        ("output is the input (convert)", ["convert", "vol.tif", "vol.tif"], 2),
        ("output is the input (crappify)", ["crappify", "vol.tif", "vol.tif"], 2),
        ("ftp:// output", ["run", "vol.tif", "ftp://x/y.ome.zarr", *sync], 2),
        ("s3:// input", ["info", "s3://bucket/vol.ome.zarr"], 2),
        ("unknown --cluster", ["run", "vol.tif", out, "--cluster", "nope"], 2),
        ("tcp:// without port", ["run", "vol.tif", out, "--cluster", "tcp://127.0.0.1"], 2),
        ("tcp:// silent listener", ["run", "vol.tif", out, "--cluster",
                                    f"tcp://127.0.0.1:{ports['silent']}"], 2),
        ("tcp:// HTTP server", ["run", "vol.tif", out, "--cluster",
                                f"tcp://127.0.0.1:{ports['http']}"], 2),
        ("model is not safetensors", ["run", "vol.tif", out, "--model", "notmodel.safetensors",
                                      *sync], 2),
        ("model file is empty", ["run", "vol.tif", out, "--model", "emptymodel.safetensors",
                                 *sync], 2),
        ("crappify float64 to .tif", ["crappify", "f64.tif", "lr64.tif"], 0),
        ("crappify bool", ["crappify", "mask.tif", "lrmask.tif"], 2),
        ("evaluate --out is a file", ["evaluate", "--hr", "vol.tif", "--out", "file"], 2),
        ("evaluate --z past the volume", ["evaluate", "--hr", "vol.tif", "--out", "ev",
                                          "--z", "2:9"], 2),
        ("evaluate tiny input", ["evaluate", "--hr", "tiny.tif", "--out", "ev"], 2),
    ]


def digest(folder: Path, names: list[str]) -> str:
    h = hashlib.sha256()
    for name in names:
        p = folder / name
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file() and not f.is_symlink():
                h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def run_case(d: Path, args: list[str], timeout: float) -> tuple[int | None, float, list[str]]:
    t0 = time.monotonic()
    proc = subprocess.Popen([str(CLI), *args], cwd=d, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        code = None
    return code, time.monotonic() - t0, [line for line in err.splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--only", default="", help="run only cases whose name has this text")
    args = parser.parse_args()
    if not CLI.exists():
        sys.exit(f"{CLI} not found: run from a checkout with its .venv")
    bad = 0
    with tempfile.TemporaryDirectory(prefix="pssr-hostile-") as tmp:
        d = Path(tmp)
        ports = make_inputs(d)
        inputs = sorted(p.name for p in d.iterdir() if p.name not in ("fifo.tif", "fifo_slices",
                        "fifo.safetensors", "loop_a.tif", "loop_b"))
        before = digest(d, inputs)
        for name, argv, expected in cases(ports):
            if args.only.lower() not in name.lower():
                continue
            present = set(os.listdir(d))
            code, seconds, lines = run_case(d, argv, args.timeout)
            left = sorted(set(os.listdir(d)) - present)
            for name_left in left:  # each case starts from the same inputs
                path = d / name_left
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            shown = next((ln for ln in lines if ln.startswith("Error")), lines[0] if lines else "")
            errors = [ln for ln in lines if ln.startswith("Error")]
            # a failure found mid-run keeps the finished blocks for --resume, by design
            resumable = "rerun with --resume" in shown
            broken = (code is None or code != expected or "internal error" in shown
                      or any("Traceback" in ln for ln in lines) or len(errors) > 1
                      or (expected != 0 and not errors)
                      or (code != 0 and bool(left) and not resumable))
            bad += broken
            status = "HANG" if code is None else str(code)
            more = f" [+{len(lines) - 1} lines]" if len(lines) > 1 else ""
            if left:
                more += f" [{'created' if code == 0 else 'left behind'}: {', '.join(left)}]"
            print(f"{'!' if broken else ' '} {name:<32} {status:>4} {seconds:6.1f}s  "
                  f"{shown[:160]}{more}", flush=True)
        after = digest(d, inputs)
    print(f"{bad} case(s) break the rule; inputs "
          f"{'unchanged' if before == after else 'MODIFIED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
