"""One writer per output: the lease (pssr_volume.io.lease), with real processes on one output.

A second ``run`` (or ``--overwrite``, or ``--resume``) on an output that a live run holds is
refused with one line and writes nothing; the first run finishes with the same bytes as an
undisturbed one. "Live" is made certain, not timed: the first run is frozen with SIGSTOP
once it holds the lease and has journaled a block.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import blocks_done, em_like, levels, wait_for, write_tiff

from pssr_volume.errors import PssrError, RunFailed
from pssr_volume.io import lease as leases
from pssr_volume.io.lease import Holder, Lease, hold, lease_path, read_holder
from pssr_volume.io.ome_zarr import read_provenance

EXE = Path(sys.executable).with_name("pssr-volume")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lease(output: Path, *, pid: int, heartbeat: float, host: str | None = None) -> None:
    path = lease_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid,
                                "token": "f" * 32, "command": "pssr-volume run",
                                "started": heartbeat, "heartbeat": heartbeat}))


# --------------------------------------------------------------------------- unit tests


def test_take_refresh_release(tmp_path):
    out = tmp_path / "new.ome.zarr"
    lease = Lease(out, "pssr-volume run", refresh_s=3600)
    lease.take()
    try:
        holder = read_holder(out)
        assert holder is not None and holder.pid == os.getpid() and holder.token == lease.token
        assert holder.host == socket.gethostname() and holder.command == "pssr-volume run"
        assert not holder.is_stale()
        assert leases.live_holder(out) is None  # our own lease does not block us
        first = holder.heartbeat
        time.sleep(0.01)
        assert lease.refresh()
        assert read_holder(out).heartbeat > first
    finally:
        lease.release()
    assert not out.exists()  # the folder take() made goes too, when nothing was written
    assert leases.held_token(out) is None


def test_a_second_lease_is_refused_and_leaves_nothing(tmp_path):
    out = tmp_path / "o.ome.zarr"
    with hold(out, "pssr-volume run"):
        other = Lease(out, "pssr-volume convert")
        with pytest.raises(PssrError, match=r"output .*o\.ome\.zarr is being written by "
                           rf"pssr-volume run \(pid {os.getpid()} on .*\) since .*; wait for "
                           "it or stop it"):
            other.take()
    fresh = tmp_path / "fresh.ome.zarr"
    _write_lease(fresh, pid=os.getpid(), heartbeat=time.time())
    lease = Lease(tmp_path / "fresh.ome.zarr", "pssr-volume run")
    with pytest.raises(PssrError, match="is being written by"):
        lease.take()
    assert lease_path(fresh).is_file()  # the live lease is untouched


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path):
    out = tmp_path / "new.ome.zarr"
    with pytest.raises(RuntimeError), hold(out, "pssr-volume run"):
        raise RuntimeError("the cluster did not start")
    assert not out.exists()


def test_resume_of_a_missing_output_is_refused_and_a_new_run_starts_it(tmp_path, volume, cli):
    """A typo in the output path of a --resume must not start a second output (issue 23)."""
    inp, args, reference = volume
    out = tmp_path / "new.ome.zarr"
    code, _, err = cli("run", inp, out, *args, "--resume", "--no-progress")
    assert code == 2 and "nothing to resume" in err and err.count("\n") == 1, err
    assert not out.exists()
    code, _, err = cli("run", inp, out, *args, "--no-progress")
    assert code == 0, err
    assert levels(out) == reference


def test_staleness_rules():
    now = time.time()
    me = socket.gethostname()
    assert not Holder(me, os.getpid(), "t", "c", now, now).is_stale(now)
    assert Holder(me, os.getpid(), "t", "c", now, now - 61).is_stale(now)  # heartbeat
    assert Holder(me, _dead_pid(), "t", "c", now, now).is_stale(now)  # pid gone, same host
    # another host: only the heartbeat counts (its pids mean nothing here)
    assert not Holder("elsewhere", _dead_pid(), "t", "c", now, now - 30).is_stale(now)
    assert Holder("elsewhere", os.getpid(), "t", "c", now, now - 61).is_stale(now)


def test_a_stale_lease_is_broken_and_taken(tmp_path):
    out = tmp_path / "o.ome.zarr"
    _write_lease(out, pid=_dead_pid(), heartbeat=time.time() - 3600)
    with hold(out, "pssr-volume run") as lease:
        assert read_holder(out).token == lease.token
    assert out.is_dir() and not (out / ".pssr-volume").exists()  # the stale one went too


def test_an_unreadable_lease_counts_as_live_while_recent(tmp_path):
    out = tmp_path / "o.ome.zarr"
    lease_path(out).parent.mkdir(parents=True)
    lease_path(out).write_text("")  # created an instant ago by O_EXCL, not yet written
    with pytest.raises(PssrError, match="being written by an unknown process"):
        Lease(out, "pssr-volume run").take()
    old = time.time() - 3600
    os.utime(lease_path(out), (old, old))
    with hold(out, "pssr-volume run"):
        pass


def test_a_lease_taken_over_stops_the_holder(tmp_path):
    out = tmp_path / "o.ome.zarr"
    taken = "the lease on .* was taken over by pid 4242 on elsewhere"
    with pytest.raises(RunFailed, match=taken), hold(out, "pssr-volume run") as lease:
        _write_lease(out, pid=4242, heartbeat=time.time(), host="elsewhere")
        assert not lease.refresh()
        raise KeyboardInterrupt  # what the heartbeat thread does to the main thread
    assert read_holder(out).pid == 4242  # someone else's lease is never deleted


# --------------------------------------------------------------------------- processes


def _start(inp: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(EXE), "run", str(inp), str(out), *args, "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop_when_writing(proc: subprocess.Popen, out: Path) -> None:
    wait_for(lambda: blocks_done(out) >= 1 or proc.poll() is not None, "the first block")
    assert proc.poll() is None, proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGSTOP)
    wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED, "the stop")


def _second(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *map(str, args), "--no-progress"], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def volume(tmp_path, models, cli):
    """A run of 128 blocks that takes a few seconds in one process, and its reference
    bytes (made in this process)."""
    inp = write_tiff(tmp_path / "in.tif", em_like((8, 64, 64), seed=41))
    args = ["--model", str(models["pointwise"]), "--cluster", "sync",
            "--block-shape", "1,64,64", "--chunk-shape", "1,64,64", "--levels", "2"]
    ref = tmp_path / "ref.ome.zarr"
    code, _, err = cli("run", inp, ref, *args, "--no-progress")
    assert code == 0, err
    return inp, args, levels(ref)


@pytest.mark.parametrize("flag", [None, "--overwrite", "--resume"])
def test_a_second_run_on_a_live_output_is_refused(tmp_path, volume, flag):
    inp, args, reference = volume
    out = tmp_path / "out.ome.zarr"
    first = _start(inp, out, *args)
    try:
        _stop_when_writing(first, out)
        holder = read_holder(out)
        assert holder is not None and holder.pid == first.pid
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
        second = _second("run", inp, out, *args, *([flag] if flag else []))
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2, second.stderr
        assert lines == [f"Error: output {out} is being written by pssr-volume run (pid "
                         f"{first.pid} on {socket.gethostname()}) since {holder.since()}; "
                         "wait for it or stop it"], second.stderr
        after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
        assert after == before  # nothing written, nothing deleted
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=300) == 0, first.stderr.read().decode()
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait()
    assert read_provenance(out)["status"] == "complete"
    assert not (out / ".pssr-volume").exists()  # no journal, no lease
    assert levels(out) == reference


def test_a_second_convert_on_a_live_output_is_refused(tmp_path, volume):
    inp, args, _ = volume
    out = tmp_path / "out.ome.zarr"
    first = _start(inp, out, *args)
    try:
        _stop_when_writing(first, out)
        second = _second("convert", inp, out, "--overwrite", "--cluster", "sync")
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1
        assert "is being written by pssr-volume run" in second.stderr
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait()


# Runs ``pssr-volume`` in this process with Lease.take held until every run given the same
# meeting folder has reached it: the runs pass their checks, then race for the lease together.
_MEET_AT_THE_LEASE = """
import os, sys, time
from pathlib import Path
from pssr_volume.io import lease
from pssr_volume.cli import main
meet, runs = Path(sys.argv.pop(1)), int(sys.argv.pop(1))
take = lease.Lease.take
def meet_then_take(self):
    (meet / str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(list(meet.iterdir())) < runs:
        if time.monotonic() > deadline:
            raise SystemExit("the other run never reached the lease")
        time.sleep(0.005)
    take(self)
lease.Lease.take = meet_then_take
sys.exit(main(sys.argv[1:]))
"""


def test_two_runs_started_together_on_a_new_output(tmp_path, volume):
    """Both pass the checks before either creates anything (both are held at the lease
    until both reach it); exactly one gets the lease, the other is refused by it naming the
    winner, and the output is the winner's, byte for byte."""
    inp, args, reference = volume
    out = tmp_path / "out.ome.zarr"
    meet = tmp_path / "meet"
    meet.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _MEET_AT_THE_LEASE, str(meet), "2", "run",
                               str(inp), str(out), *args, "--no-progress"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    errs = [p.stderr.read().decode() for p in procs]
    assert sorted(codes) == [0, 2], errs
    assert sorted(int(f.name) for f in meet.iterdir()) == sorted(p.pid for p in procs)
    winner, loser = procs[codes.index(0)], errs[codes.index(2)]
    assert re.fullmatch(
        rf"Error: output {re.escape(str(out))} is being written by pssr-volume run \(pid "
        rf"{winner.pid} on {re.escape(socket.gethostname())}\) since .+; wait for it or stop "
        r"it\n", loser), loser
    assert read_provenance(out)["status"] == "complete"
    assert not (out / ".pssr-volume").exists()
    assert levels(out) == reference


def test_a_stale_lease_of_a_killed_run_is_broken(tmp_path, volume):
    inp, args, reference = volume
    out = tmp_path / "out.ome.zarr"
    first = _start(inp, out, *args)
    _stop_when_writing(first, out)
    first.kill()  # SIGKILL: the lease stays behind, its pid is gone
    first.wait()
    assert read_holder(out).pid == first.pid
    done = _second("run", inp, out, *args, "--resume")
    assert done.returncode == 0, done.stderr
    assert levels(out) == reference and not (out / ".pssr-volume").exists()


def test_a_stale_lease_with_an_old_heartbeat_is_broken(tmp_path, volume):
    inp, args, reference = volume
    out = tmp_path / "out.ome.zarr"
    _write_lease(out, pid=os.getpid(), heartbeat=time.time() - 120)  # live pid, no heartbeat
    done = _second("run", inp, out, *args)
    assert done.returncode == 0, done.stderr
    assert levels(out) == reference and not (out / ".pssr-volume").exists()
