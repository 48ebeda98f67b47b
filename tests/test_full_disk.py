"""A full disk: a real, small tmpfs fills up during a run. The run stops with one line (no
worker logs or tracebacks on the terminal), keeps its finished blocks, and once space is freed
``--resume`` completes byte-identically to an uninterrupted run.

Needs permission to mount a tmpfs (root with CAP_SYS_ADMIN, as in the project's containers);
skipped elsewhere.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import em_like, levels, write_tiff

EXE = Path(sys.executable).with_name("pssr-volume")


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip() or made.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), "run", *map(str, args), "--no-progress"],
                          capture_output=True, text=True, timeout=300)


def test_full_disk_stops_in_one_line_and_resume_completes(tmp_path, models, small_disk):
    # noise-like content compresses badly: about 3 MB of level-0 chunks, the disk holds 1 MB
    inp = write_tiff(tmp_path / "in.tif", em_like((6, 96, 96), seed=71))
    args = ["--model", models["fast"], "--block-shape", "1,128,128", "--cluster", "local",
            "--workers", "2", "--compression-level", "1"]
    out = small_disk / "out.ome.zarr"
    full = _run(inp, out, *args)
    lines = full.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert full.returncode != 0, full.stderr
    assert len(errors) == 1 and errors[0] == lines[-1], full.stderr
    assert "Traceback" not in full.stderr and "internal error" not in full.stderr
    # the task that hit the full disk (a block, or a pyramid chunk), the OS's own words, what
    # is kept and what to do; the log file's name when the cluster logged something
    said = re.fullmatch(
        r"Error: (block|pyramid level \d+ at) \(\d+, \d+, \d+\) failed: .*No space left on "
        r"device.* \((\d+) of 54 blocks are done and kept; rerun with --resume\)"
        rf"( \(logs: {re.escape(str(out))}\.log\))?", errors[0])
    assert said is not None, errors[0]
    # pyramid tasks start once every block is done; a failed block is not done
    assert (said[1] == "block") == (int(said[2]) < 54), errors[0]
    assert all(ln.split()[0] in ("input", "model", "output", "blocks", "cluster", "note:",
                                 "Error:") for ln in lines), full.stderr

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = _run(inp, out, *args, "--resume")
    assert again.returncode == 0, again.stderr
    ref = tmp_path / "ref.ome.zarr"
    assert _run(inp, ref, *args).returncode == 0
    assert levels(out) == levels(ref)
