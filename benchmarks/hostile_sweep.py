"""Hostile-input sweep: run ``pssr-volume`` on ~80 bad inputs and flags, one process each.

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
and after the sweep checks that none was modified (the damaged outputs that ``--resume
--verify`` cases repair are left out of it). Network cases talk to local servers: one that
accepts connections and never answers (HTTP, and S3 through ``AWS_ENDPOINT_URL``), one that
answers every path with a web page, and a plain file server. A read-only mount is tried
(``mount -t tmpfs -o ro``, as root); without it that case is left out. Nothing is
asserted: the sweep reports (some cases belong to work in progress).

Usage, from the repository root::

    python benchmarks/hostile_sweep.py [--timeout 60] [--only fifo]
"""

from __future__ import annotations

import argparse
import functools
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
    zarr.create_array(str(d / "huge.zarr"), shape=(10**6,) * 3, chunks=(64, 1024, 1024),
                      dtype="uint8", fill_value=0)  # metadata only
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
    os.symlink(d / "outloop", d / "outloop")
    _make_shapes(d, rng)
    _make_outputs(d)
    return {"silent": _silent_listener(), "http": _http_server(d), "html": _html_server()}


def _make_shapes(d: Path, rng: np.random.Generator) -> None:
    """Zero-length axes, sections smaller than the noise estimate's 11x11, a 1x1x1 TIFF."""
    import h5py

    zarr.create_array(d / "empty_z.zarr", shape=(0, 64, 64), chunks=(1, 64, 64), dtype="uint8")
    zarr.create_array(d / "empty_y.zarr", shape=(4, 0, 64), chunks=(1, 64, 64), dtype="uint8",
                      zarr_format=2)
    with h5py.File(d / "empty.h5", "w") as f:
        f.create_dataset("raw", shape=(0, 64, 64), dtype="uint8")
    tifffile.imwrite(d / "small8.tif", rng.integers(0, 255, (2, 8, 8), dtype=np.uint8),
                     photometric="minisblack")
    zarr.create_array(d / "thin.zarr", shape=(2, 64, 1), chunks=(1, 64, 1), dtype="uint8")[:] = 7
    tifffile.imwrite(d / "one.tif", np.full((1, 1, 1), 9, np.uint8), photometric="minisblack")
    (d / "afile").write_text("a file where a folder is needed")


def _cli(*args: object) -> None:
    subprocess.run([str(CLI), *map(str, args)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def _make_outputs(d: Path) -> None:
    """Finished outputs written by convert, then damaged: a level's zarr.json, the group's,
    a shard replaced by a folder; an image whose dataset path leaves it; odd length units."""
    import json

    _cli("convert", d / "vol.tif", d / "conv.ome.zarr", "--levels", "2", "--cluster", "sync",
         "--no-progress")
    for name in ("dmg_level", "dmg_group", "dmg_folder", "escape", "units"):
        shutil.copytree(d / "conv.ome.zarr", d / f"{name}.ome.zarr")
    (d / "dmg_level.ome.zarr" / "0" / "zarr.json").write_text("{broken")
    (d / "dmg_group.ome.zarr" / "zarr.json").write_text("{broken")
    shard = next(p for p in (d / "dmg_folder.ome.zarr" / "0" / "c").rglob("*") if p.is_file())
    shard.unlink()
    shard.mkdir()
    for name, change in [("escape", "path"), ("units", "unit")]:
        meta = d / f"{name}.ome.zarr" / "zarr.json"
        doc = json.loads(meta.read_text())
        ms = doc["attributes"]["ome"]["multiscales"][0]
        if change == "path":
            ms["datasets"][0]["path"] = "../conv.ome.zarr/0"
        else:
            for axis in ms["axes"]:
                axis["unit"] = "femtometer"
        meta.write_text(json.dumps(doc))


MUTABLE = ("dmg_level.ome.zarr", "dmg_group.ome.zarr", "dmg_folder.ome.zarr", "conv.ome.zarr",
           "ro")  # outputs the cases may repair, and the read-only mount


def _read_only_mount(d: Path) -> bool:
    """A read-only tmpfs at d/ro (as root); False where mounting is not allowed."""
    (d / "ro").mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs",
                               str(d / "ro")], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _html_server() -> int:
    class Html(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = b"<!DOCTYPE html><html><body>Welcome</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


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

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        Quiet, directory=str(d)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


Case = tuple[str, list[str], int, dict[str, str]]


def cases(ports: dict[str, int], read_only: bool) -> list[Case]:
    """(name, arguments, expected exit status, environment) of every case; run in the
    input folder."""
    return [(name, args, code, {}) for name, args, code in _first_sweep(ports)] + \
        _second_sweep(ports, read_only)


def _second_sweep(ports: dict[str, int], read_only: bool) -> list[Case]:
    """The classes of issue 23: silent endpoints, web pages, empty axes, tiny sections,
    output paths the system refuses, damaged outputs, refused resumes, escaping datasets."""
    sync = ["--cluster", "sync", "--no-progress"]
    out = "out.ome.zarr"
    silent = f"http://127.0.0.1:{ports['silent']}"
    html = f"http://127.0.0.1:{ports['html']}"
    s3 = {"AWS_ENDPOINT_URL": silent, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
          "AWS_REGION": "us-east-1"}
    web = f"http://127.0.0.1:{ports['http']}"
    long_name = "a" * 300 + ".ome.zarr"
    deep = "/".join(["d" * 200] * 21) + "/o.ome.zarr"
    conv = ["--levels", "2", "--cluster", "sync", "--no-progress"]
    found: list[Case] = [
        ("silent HTTP endpoint (info)", ["info", f"{silent}/img.ome.zarr"], 2, {}),
        ("silent HTTP endpoint (run)", ["run", f"{silent}/img.ome.zarr", out, *sync], 2, {}),
        ("silent HTTP endpoint (convert)", ["convert", f"{silent}/v.n5", out, *sync], 2, {}),
        ("silent S3 endpoint (run input)", ["run", "s3://b/img.ome.zarr", out, *sync], 2, s3),
        ("silent S3 endpoint (run output)", ["run", "vol.tif", "s3://b/o.ome.zarr", *sync], 2,
         s3),
        ("silent S3 endpoint (verify)", ["verify", "s3://b/o.ome.zarr"], 2, s3),
        ("silent S3 endpoint (info)", ["info", "s3://b/img.ome.zarr"], 2, s3),
        ("bad PSSR_VOLUME_NETWORK_TIMEOUT", ["info", f"{silent}/x.zarr"], 2,
         {"PSSR_VOLUME_NETWORK_TIMEOUT": "soon"}),
        ("web page for every path (info)", ["info", f"{html}/img.ome.zarr"], 2, {}),
        ("web page for every path (run)", ["run", f"{html}/img.ome.zarr", out, *sync], 2, {}),
        ("web page for every path (N5)", ["convert", f"{html}/v.n5/s0", out, *sync], 2, {}),
        ("zero-length z (zarr v3, run)", ["run", "empty_z.zarr", out, *sync], 2, {}),
        ("zero-length z (HDF5, run)", ["run", "empty.h5:/raw", out, *sync], 2, {}),
        ("zero-length y (zarr v2, convert)", ["convert", "empty_y.zarr", out, *sync], 2, {}),
        ("zero-length z (crappify)", ["crappify", "empty_z.zarr", "lr.tif"], 2, {}),
        ("zero-length z (info)", ["info", "empty.h5:/raw"], 2, {}),
        ("2x8x8 sections (run)", ["run", "small8.tif", out, *sync], 2, {}),
        ("2x64x1 sections (run)", ["run", "thin.zarr", out, *sync], 2, {}),
        ("2x8x8 sections with --noise", ["run", "small8.tif", out, "--noise", "0.01,0.01",
                                         *sync], 0, {}),
        ("1x1x1 TIFF (info)", ["info", "one.tif"], 0, {}),
        ("output name over 255 bytes (run)", ["run", "vol.tif", long_name, *sync], 2, {}),
        ("output name over 255 (convert)", ["convert", "vol.tif", long_name, *sync], 2, {}),
        ("output name over 255 (crappify)", ["crappify", "vol.tif", "a" * 300 + ".tif"], 2, {}),
        ("output path over PATH_MAX (run)", ["run", "vol.tif", deep, *sync], 2, {}),
        ("output path over PATH_MAX (crap.)", ["crappify", "vol.tif", deep[:-9] + ".tif"], 2,
         {}),
        ("output in a symlink loop (run)", ["run", "vol.tif", "outloop/o.ome.zarr", *sync], 2,
         {}),
        ("output in a symlink loop (crap.)", ["crappify", "vol.tif", "outloop/lr.tif"], 2, {}),
        ("output below a file (convert)", ["convert", "vol.tif", "afile/sub/o.ome.zarr", *sync],
         2, {}),
        ("output in /proc (run)", ["run", "vol.tif", "/proc/pssr-sweep.ome.zarr", *sync], 2,
         {}),
        ("output in /sys (crappify)", ["crappify", "vol.tif", "/sys/pssr-sweep.tif"], 2, {}),
        ("damaged level zarr.json (verify)", ["verify", "dmg_level.ome.zarr"], 2, {}),
        ("damaged level zarr.json (resume)", ["convert", "vol.tif", "dmg_level.ome.zarr",
                                              *conv, "--resume", "--verify"], 2, {}),
        ("damaged level zarr.json (info)", ["info", "dmg_level.ome.zarr"], 2, {}),
        ("damaged group zarr.json (verify)", ["verify", "dmg_group.ome.zarr"], 2, {}),
        ("damaged group zarr.json (resume)", ["convert", "vol.tif", "dmg_group.ome.zarr", *conv,
                                              "--resume"], 2, {}),
        ("shard replaced by a folder (verify)", ["verify", "dmg_folder.ome.zarr"], 1, {}),
        ("shard replaced by a folder (repair)", ["convert", "vol.tif", "dmg_folder.ome.zarr",
                                                 *conv, "--resume", "--verify"], 0, {}),
        ("run --resume of a convert output", ["run", "vol.tif", "conv.ome.zarr", "--resume",
                                              *sync], 2, {}),
        ("convert --resume, other chunks", ["convert", "vol.tif", "conv.ome.zarr", *conv,
                                            "--resume", "--chunk-shape", "1,16,16"], 2, {}),
        ("--resume of a missing output", ["run", "vol.tif", "typo.ome.zarr", "--resume", *sync],
         2, {}),
        ("--resume --dry-run, missing output", ["run", "vol.tif", "typo.ome.zarr", "--resume",
                                                "--dry-run"], 0, {}),
        ("dataset path ../ (info)", ["info", "escape.ome.zarr"], 2, {}),
        ("dataset path ../ (run)", ["run", "escape.ome.zarr", out, *sync], 2, {}),
        ("dataset path ../ over HTTP (info)", ["info", f"{web}/escape.ome.zarr"], 2, {}),
        ("dataset path ../ over HTTP (run)", ["run", f"{web}/escape.ome.zarr", out, *sync], 2,
         {}),
        ("femtometer axes (info)", ["info", "units.ome.zarr"], 0, {}),
        ("empty --model", ["run", "vol.tif", out, "--model", "", *sync], 2, {}),
        ("silent GCS endpoint (info)", ["info", "gs://b/img.ome.zarr"], 2,
         {"STORAGE_EMULATOR_HOST": silent}),
        ("silent GCS endpoint (run output)", ["run", "vol.tif", "gs://b/o.ome.zarr", *sync], 2,
         {"STORAGE_EMULATOR_HOST": silent}),
        ("1,1,1 chunks, NGFF 0.4 (convert dry run)", ["convert", "vol.tif", out, "--chunk-shape",
         "1,1,1", "--ngff-version", "0.4", "--dry-run", *sync], 0, {}),
        ("--workers 1000 (run)", ["run", "vol.tif", out, "--workers", "1000", "--no-progress"],
         2, {}),
        ("absurd shape 10^6 cubed (run --dry-run)", ["run", "huge.zarr", out, "--voxel-size",
         "30,8,8", "--dry-run", *sync], 2, {}),
    ]
    if read_only:
        found += [("read-only mount (run)", ["run", "vol.tif", "ro/o.ome.zarr", *sync], 2, {}),
                  ("read-only mount (crappify)", ["crappify", "vol.tif", "ro/lr.tif"], 2, {})]
    return found


def _first_sweep(ports: dict[str, int]) -> list[tuple[str, list[str], int]]:
    """The first sweep's cases (issue 21)."""
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


def run_case(d: Path, args: list[str], timeout: float, env: dict[str, str]
             ) -> tuple[int | None, float, list[str]]:
    t0 = time.monotonic()
    proc = subprocess.Popen([str(CLI), *args], cwd=d, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
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
    bad = total = 0
    with tempfile.TemporaryDirectory(prefix="pssr-hostile-") as tmp:
        d = Path(tmp)
        ports = make_inputs(d)
        read_only = _read_only_mount(d)
        inputs = sorted(p.name for p in d.iterdir() if p.name not in ("fifo.tif", "fifo_slices",
                        "fifo.safetensors", "loop_a.tif", "loop_b", "outloop", *MUTABLE))
        before = digest(d, inputs)
        try:
            bad, total = _sweep(d, cases(ports, read_only), args)
        finally:
            if read_only:
                subprocess.run(["umount", str(d / "ro")], check=False)
        after = digest(d, inputs)
    print(f"{total} cases; {bad} break the rule; inputs "
          f"{'unchanged' if before == after else 'MODIFIED'}")
    return 0


def _sweep(d: Path, found: list[Case], args: argparse.Namespace) -> tuple[int, int]:
    bad = total = 0
    for name, argv, expected, env in found:
        if args.only.lower() not in name.lower():
            continue
        total += 1
        present = set(os.listdir(d))
        code, seconds, lines = run_case(d, argv, args.timeout, env)
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
        print(f"{'!' if broken else ' '} {name:<36} {status:>4} {seconds:6.1f}s  "
              f"{shown[:160]}{more}", flush=True)
    return bad, total


if __name__ == "__main__":
    sys.exit(main())
