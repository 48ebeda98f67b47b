"""Cluster logs go to ``<output>.log``, not the terminal: a run stopped by SIGTERM or Ctrl-C
(to the process group, as a terminal or SLURM sends it) prints its usual summary and then one
``Error:`` line that names the log file, where the workers' tracebacks are."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import blocks_done, em_like, wait_for, write_tiff

from pssr_volume.cluster.logs import Interrupted, logs_to, worker_log_path
from pssr_volume.errors import PssrError, RunFailed

EXE = Path(sys.executable).with_name("pssr-volume")
SUMMARY = ("input ", "model ", "output ", "blocks ", "scale check: ", "cluster ", "note: ")


def test_log_path_is_beside_the_output(tmp_path):
    assert worker_log_path(tmp_path / "out.ome.zarr") == tmp_path / "out.ome.zarr.log"
    assert worker_log_path(Path("a/b.zarr/")) == Path("a/b.zarr.log")


def test_logs_to_sends_fd2_and_children_to_the_file(tmp_path):
    log = tmp_path / "o.log"
    with logs_to(log):
        os.write(2, b"from this process\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('from a child\\n')"],
                       check=True)
    text = log.read_text()
    assert text.startswith("--- ") and "pssr-volume pid" in text.splitlines()[0]
    assert "from this process\n" in text and "from a child\n" in text
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('after\\n')"],
                   check=True, capture_output=True)
    assert "after" not in log.read_text()


def test_a_quiet_cluster_leaves_no_log_and_an_old_log_as_it_was(tmp_path):
    log = tmp_path / "o.log"
    with logs_to(log):
        pass
    assert not log.exists()
    log.write_text("an earlier run\n")
    with logs_to(log):
        pass
    assert log.read_text() == "an earlier run\n"


def test_errors_name_the_log_and_ctrl_c_is_one_line(tmp_path):
    log = tmp_path / "o.log"
    named = rf"^block \(1, 2, 3\) failed \(logs: {re.escape(str(log))}\)$"
    with pytest.raises(RunFailed, match=named), logs_to(log):
        raise RunFailed("block (1, 2, 3) failed")
    assert log.exists()  # a failed run keeps its log, even a quiet one
    with pytest.raises(Interrupted) as caught, logs_to(log):
        raise KeyboardInterrupt
    assert caught.value.exit_code == 130
    assert str(caught.value) == ("interrupted (blocks finished so far are kept; rerun with "
                                 f"--resume; logs: {log})")
    for counts, said in (((0, 5), "no block of 5 was finished yet"),
                         ((2, 5), "2 of 5 blocks are done and kept")):
        with pytest.raises(Interrupted) as caught, logs_to(log):
            stop = KeyboardInterrupt()
            stop.blocks_kept = counts  # what the engine attaches
            raise stop
        assert str(caught.value) == f"interrupted ({said}; rerun with --resume; logs: {log})"
    with pytest.raises(PssrError, match="cannot write the log file"), \
            logs_to(tmp_path / "no" / "such" / "folder.log"):
        pass


@pytest.mark.parametrize("sig,group", [("SIGTERM", False), ("SIGTERM", True), ("SIGINT", True)],
                         ids=["sigterm", "sigterm-group", "ctrl-c-group"])
def test_a_stopped_run_prints_one_error_line_naming_the_log(tmp_path, models, sig, group):
    inp = write_tiff(tmp_path / "in.tif", em_like((8, 128, 128), seed=61))
    out = tmp_path / "out.ome.zarr"
    proc = subprocess.Popen(
        [str(EXE), "run", str(inp), str(out), "--model", str(models["fast"]), "--cluster",
         "local", "--workers", "2", "--block-shape", "1,128,128", "--no-progress"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: blocks_done(out) >= 1 or proc.poll() is not None, "the first block")
        assert proc.poll() is None, proc.stderr.read()
        (os.killpg if group else os.kill)(proc.pid, getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = worker_log_path(out)
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    assert all(line.startswith(SUMMARY) for line in lines[:-1]), err  # nothing else
    assert len(lines) <= len(SUMMARY), err
    if sig == "SIGINT":
        assert proc.returncode == 130
        assert re.fullmatch(rf"Error: interrupted \((\d+) of 128 blocks are done and kept; rerun "
                            rf"with --resume; logs: {re.escape(str(log))}\)", errors[0]), err
    else:
        assert proc.returncode == 1
        assert re.fullmatch(r"Error: terminated by SIGTERM \(job cancelled or out of time\): "
                            r"\d+ of 128 blocks are done and kept; rerun with --resume "
                            rf"\(logs: {re.escape(str(log))}\)", errors[0]), err
    assert log.is_file() and log.read_text().startswith("--- ")
    assert not (out / ".pssr-volume" / "lease.json").exists()  # released on the way out
