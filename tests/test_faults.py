"""Faults: a worker killed mid-run, the client killed mid-run, a block that keeps failing.

Each ends with output byte-identical to an uninterrupted run. "Mid-run" is made
certain, not timed: the processes are frozen with SIGSTOP once some blocks are
journaled, the journal is counted while nothing can move, and only then is the
fault injected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr
from conftest import blocks_done, digest, em_like, levels, wait_for, write_tiff

from pssr_volume.io.ome_zarr import read_provenance


def stopped(pids) -> bool:
    """Whether every one of ``pids`` has stopped (SIGSTOP is delivered asynchronously)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() not in (psutil.STATUS_STOPPED,
                                                    psutil.STATUS_ZOMBIE):
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def group(pgid: int) -> list[int]:
    """The processes of a process group."""
    return [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pgid]


def run_ok(cli, *args) -> str:
    code, _, err = cli("run", *args, "--no-progress")
    assert code == 0, err
    return err


def test_worker_killed_mid_run_is_rescheduled_and_output_identical(tmp_path, models, scheduler,
                                                                   cli):
    from dask.distributed import Client, LocalCluster

    inp = write_tiff(tmp_path / "in.tif", em_like((8, 64, 64), seed=31))
    inp.chmod(0o444)
    args = ["--model", models["fast"], "--block-shape", "1,64,64", "--levels", "2"]  # 128
    run_ok(cli, inp, tmp_path / "ref.ome.zarr", *args, "--cluster", scheduler)
    reference = levels(tmp_path / "ref.ome.zarr")
    out = tmp_path / "out.ome.zarr"
    killed: dict[str, int] = {}  # what the fault hit
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    try:
        with Client(cluster) as client:
            pids = client.run(os.getpid)

            def kill_a_busy_worker() -> None:
                wait_for(lambda: blocks_done(out) >= 4, "the first blocks")
                for pid in pids.values():
                    os.kill(pid, signal.SIGSTOP)
                wait_for(lambda: stopped(pids.values()), "the workers to stop")
                killed["done"] = blocks_done(out)
                busy = [w for w, tasks in client.processing().items() if tasks]
                victim = busy[0] if busy else next(iter(pids))
                killed["pid"], killed["busy"] = pids[victim], len(busy)
                os.kill(pids[victim], signal.SIGKILL)
                for w, pid in pids.items():
                    if w != victim:
                        os.kill(pid, signal.SIGCONT)

            killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
            killer.start()
            err = run_ok(cli, inp, out, *args, "--cluster", cluster.scheduler_address)
            killer.join(timeout=30)
    finally:
        cluster.close()
    assert killed["done"] < 128 and killed["busy"]  # killed mid-run, holding blocks
    assert "done: 128 block(s) restored" in err
    assert read_provenance(out)["status"] == "complete"
    assert not (out / ".pssr-volume").exists()  # the journal goes with completion
    assert levels(out) == reference


def test_client_killed_mid_run_resumes_only_undone_blocks(tmp_path, models, scheduler, cli):
    """The issue's scenario with the small test model: a 12 x 256 x 256 input restored with
    --block-shape 1,256,256 (192 blocks) on a local cluster, SIGKILLed (its whole process
    group: client, scheduler, workers) half way, then finished with --resume (here on
    another cluster: resuming does not depend on where blocks run)."""
    inp = write_tiff(tmp_path / "in.tif", em_like((12, 256, 256), seed=32))
    inp.chmod(0o444)
    before = digest(inp)
    args = ["--model", models["fast"], "--block-shape", "1,256,256"]
    # one worker per core: 1 torch thread each, like the reference's workers
    local = ["--cluster", "local", "--workers", str(os.cpu_count() or 1)]
    total = 12 * 4 * 4
    out = tmp_path / "out.ome.zarr"
    exe = Path(sys.executable).with_name("pssr-volume")
    proc = subprocess.Popen([str(exe), "run", str(inp), str(out), *map(str, args + local),
                             "--no-progress"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: blocks_done(out) >= total // 2 or proc.poll() is not None, "half")
        os.killpg(proc.pid, signal.SIGSTOP)  # client, scheduler, nannies and workers
        wait_for(lambda: stopped(group(proc.pid)), "the process group to stop")
        frozen = blocks_done(out)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def group_gone() -> bool:
        alive = []
        for pid in group(proc.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return not alive

    wait_for(group_gone, "the killed process group to disappear", 30, 0.1)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    kept = blocks_done(out)
    assert kept == frozen and total // 2 <= kept < total
    assert read_provenance(out)["status"] == "running"

    err = run_ok(cli, inp, out, *args, "--cluster", scheduler, "--resume")
    assert f"done: {total - kept} block(s) restored, {kept} already done" in err
    assert read_provenance(out)["status"] == "complete"
    run_ok(cli, inp, tmp_path / "ref.ome.zarr", *args, "--cluster", scheduler)
    assert levels(out) == levels(tmp_path / "ref.ome.zarr")
    assert digest(inp) == before


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def test_poisoned_block_stops_the_run_naming_it_then_resume_finishes(tmp_path, models,
                                                                     scheduler, cli):
    """A zarr input with one corrupt chunk: its block fails on every retry, the run
    stops with one line naming the block and the decode error, finished blocks are
    kept, and once the chunk is repaired --resume completes the same bytes."""
    from dask.distributed import Client

    inp = tmp_path / "in.zarr"
    vol = em_like((6, 48, 48), seed=33)
    zarr.create_array(str(inp), shape=vol.shape, chunks=(1, 48, 48), dtype="uint8")[:] = vol
    chunk = inp / "c" / "4" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(b"\x00garbage, not zstd\xff" * 8)
    for p in [*inp.rglob("*"), inp]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    before = digest(inp)
    out = tmp_path / "out.ome.zarr"
    args = ["--model", models["pointwise"], "--block-shape", "1,192,192",
            "--voxel-size", "50,18.4,18.4", "--cluster", scheduler]

    code, _, err = cli("run", inp, out, *args, "--no-progress")
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err  # the input is at fault: a user error
    failure = [ln for ln in lines if ln.startswith("Error:")]
    assert len(failure) == 1 and failure[0] == lines[-1], err
    assert re.fullmatch(
        r"Error: block \(4, 0, 0\): Could not read region \[4:5, 0:48, 0:48\] "
        r"of .*in\.zarr.*Zstd.* \(\d of 6 blocks are done and kept; fix this, then rerun "
        r"with --resume\)( \(logs: .*\.log\))?", failure[0]), failure[0]  # logs: if any
    assert digest(inp) == before  # the input is never touched
    with Client(scheduler) as client:  # cancelled tasks still running may finish and journal

        def executing(dask_worker) -> int:  # tasks running in the worker, cancelled or not
            return len(dask_worker.state.executing)

        wait_for(lambda: not any(client.processing().values())
                 and not any(client.run(executing).values()), "idle workers", 30, 0.05)
    kept = blocks_done(out)
    assert kept <= 5 and read_provenance(out)["status"] == "running"

    chunk.chmod(0o644)
    chunk.parent.chmod(0o755)
    chunk.write_bytes(good)
    err = run_ok(cli, inp, out, *args, "--resume")
    assert f"done: {6 - kept} block(s) restored, {kept} already done" in err
    run_ok(cli, inp, tmp_path / "ref.ome.zarr", *args)
    assert levels(out) == levels(tmp_path / "ref.ome.zarr")
    np.testing.assert_array_equal(
        zarr.open_group(str(out), mode="r")["0"][:], vol.repeat(4, 1).repeat(4, 2))


@pytest.fixture(autouse=True)
def _writable_tmp(tmp_path):
    """Let pytest clean up read-only inputs."""
    yield
    for p in [tmp_path, *tmp_path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
