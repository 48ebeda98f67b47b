"""``--cluster slurm`` end to end against a real one-node SLURM (see slurm_fixture.py).

Each run restores a small volume with dask-jobqueue worker jobs and must give
the same bytes as a run on a local Dask cluster. All workers use one torch
thread, like the reference run, so the network computes identically.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import dask
import pytest
from conftest import (
    QUIET,
    blocks_done,
    digest,
    em_like,
    levels,
    periodic_work,
    wait_for,
    write_tiff,
)
from slurm_fixture import LocalSlurm, local_slurm_fixture  # noqa: F401  (local_slurm)

from pssr_volume.allocator import WORKER_ENVIRON
from pssr_volume.cluster import slurm as cluster_module
from pssr_volume.cluster.executors import open_executor
from pssr_volume.cluster.spec import check_cluster
from pssr_volume.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
SBATCH_SCRIPT = ROOT / "workflows" / "slurm" / "run.sbatch"
BLOCK = ["--block-shape", "1,64,64", "--levels", "2"]  # 128 small blocks of 8 x 64 x 64:
TOTAL = 128  # the run lasts long enough after its first blocks for faults to hit mid-run


def profile(tmp_path: Path, slurm: LocalSlurm, name: str = "test.yaml", **extra: object) -> Path:
    """A small CPU profile for the local SLURM: one 1-core worker job."""
    settings = {
        "partition": slurm.partition, "cores": 1, "processes": 1, "memory": "2GB",
        "walltime": "00:10:00", "jobs": 1, "log_directory": str(tmp_path / "worker-logs"),
        "death_timeout": 15, "startup_timeout": 120, "dashboard_address": ":0",
        **extra,
    }
    path = tmp_path / name
    path.write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
    return path


@pytest.fixture(scope="module")
def volume(tmp_path_factory, models, scheduler):
    """An 8 x 64 x 64 input and its reference restoration on a local Dask cluster."""
    d = tmp_path_factory.mktemp("slurm-volume")
    inp = write_tiff(d / "in.tif", em_like((8, 64, 64), seed=21))
    inp.chmod(0o444)
    ref = d / "reference.ome.zarr"
    from pssr_volume.cli import main

    assert main(["run", str(inp), str(ref), "--model", str(models["fast"]), *BLOCK,
                 "--cluster", scheduler, "--no-progress"]) == 0
    return inp, levels(ref), digest(inp)


@pytest.fixture(autouse=True)
def _no_jobs_left(request):
    """Whatever a test asserted, leave no job behind for the next one."""
    yield
    if "local_slurm" in request.fixturenames:
        slurm = request.getfixturevalue("local_slurm")
        if slurm.jobs():
            slurm.run("scancel", "-p", slurm.partition, check=False)
            wait_for(lambda: not slurm.jobs(), "the jobs to be cancelled", 60, 0.2)


def test_slurm_profile_sets_the_device(tmp_path, local_slurm):
    gpu = tmp_path / "g.yaml"
    gpu.write_text("memory: 4GB\ngpus: 1\n")
    base = RunConfig(input=tmp_path / "in.tif", output=tmp_path / "o", cluster="slurm",
                     profile=profile(tmp_path, local_slurm))
    assert check_cluster(base).device == "cpu"
    assert check_cluster(base.model_copy(update={"profile": gpu})).device == "cuda"
    assert check_cluster(base.model_copy(update={"profile": gpu, "device": "cpu"})).device == "cpu"


def test_slurm_workers_allocate_from_the_main_heap_and_keep_dask_quiet(tmp_path, local_slurm):
    """The worker jobs start with the environment and Dask settings of --cluster local
    workers (allocator.WORKER_ENVIRON: glibc's main heap for every thread;
    cluster.settings: no statistical profiler, rarer ticks), through their job script."""
    spec = check_cluster(RunConfig(input=tmp_path / "in.tif", output=tmp_path / "o",
                                   cluster="slurm", profile=profile(tmp_path, local_slurm)))
    with open_executor(spec) as ex:
        seen = ex.client.run(lambda: {k: os.environ.get(k) for k in WORKER_ENVIRON})
        # a lambda travels by value: a SLURM worker cannot import this test's conftest
        names = tuple(QUIET)
        workers = ex.client.run(lambda dask_worker: {
            n: getattr(dask_worker.periodic_callbacks.get(n), "callback_time", None)
            for n in names})
        scheduler = ex.client.run_on_scheduler(periodic_work)
    assert seen and all(env == WORKER_ENVIRON for env in seen.values()), seen
    assert workers and all(w == QUIET for w in workers.values()), workers
    assert scheduler == QUIET


def test_slurm_run_survives_a_lost_job_and_matches_local_run(tmp_path, local_slurm, volume,
                                                             models, cli, monkeypatch):
    """One worker job; it is suspended mid-run (so the run cannot finish meanwhile), then
    cancelled, as at the end of its walltime. Dask reschedules its blocks, a replacement
    job is submitted, the run completes with the reference bytes, no job is left behind."""
    inp, reference, _ = volume
    out = tmp_path / "out.ome.zarr"
    monkeypatch.setattr(cluster_module, "REPLACE_INTERVAL_S", 0.5)
    seen: dict[str, object] = {}

    def lose_the_worker_job() -> None:
        wait_for(lambda: len(local_slurm.jobs()) == 1, "the worker job", step=0.2)
        seen["jobs"] = jobs = local_slurm.jobs()
        wait_for(lambda: blocks_done(out) >= 2, "the first blocks")
        local_slurm.suspend(*jobs)
        seen["done"] = blocks_done(out)
        local_slurm.run("scancel", *jobs)

    killer = threading.Thread(target=lose_the_worker_job, daemon=True)
    killer.start()
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1s"}):
        code, _, err = cli("run", inp, out, "--model", models["fast"], *BLOCK,
                           "--cluster", "slurm", "--profile", profile(tmp_path, local_slurm),
                           "--no-progress")
    killer.join(timeout=60)
    assert code == 0, err
    assert f"done: {TOTAL} block(s) restored" in err
    assert re.search(r"cluster slurm: 1 worker\(s\), dashboard http://\S+/status", err)
    assert len(seen["jobs"]) == 1 and seen["done"] < TOTAL  # lost mid-run
    logs = {p.stem for p in (tmp_path / "worker-logs").glob("*.out")}
    assert len(logs) >= 2, logs  # a replacement job ran
    assert levels(out) == reference
    wait_for(lambda: not local_slurm.jobs(), "the worker jobs to be cancelled", 30)


def test_slurm_sbatch_workflow_killed_then_resubmitted_matches_local_run(
        tmp_path, local_slurm, volume, models):
    """workflows/slurm/run.sbatch as a user runs it: the client job is cancelled mid-run
    (its allocation ends: SIGTERM), cancels its worker job, and the same sbatch command
    submitted again finishes the output with --resume, recomputing only the undone blocks."""
    inp, reference, inp_digest = volume
    out = tmp_path / "out.ome.zarr"
    env = {**local_slurm.env, "PSSR_PROFILE": str(profile(tmp_path, local_slurm)),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = ["sbatch", "--parsable", "--cpus-per-task=1", "--mem=2G", "--time=00:10:00",
               f"--output={tmp_path}/client-%j.log", str(SBATCH_SCRIPT), str(inp), str(out),
               "--model", str(models["fast"]), *BLOCK]
    client = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                            check=True).stdout.strip()
    wait_for(lambda: len(local_slurm.jobs()) == 2, "the worker job", step=0.2)
    workers = [j for j in local_slurm.jobs() if j != client]
    wait_for(lambda: blocks_done(out) >= 3, "the first blocks")
    local_slurm.suspend(*workers)  # no block finishes from here on
    frozen = blocks_done(out)
    assert len(workers) == 1 and frozen < TOTAL
    local_slurm.run("scancel", "--batch", "--signal=TERM", client)  # what --signal=B:TERM does
    wait_for(lambda: not local_slurm.jobs(), "the client and worker jobs to end", 60)
    log = (tmp_path / f"client-{client}.log").read_text()
    said = re.search(r"Error: terminated by SIGTERM \(job cancelled or out of time\): "
                     rf"(\d+) of {TOTAL} blocks are done and kept; rerun with --resume", log)
    assert said, log
    kept = blocks_done(out)
    assert kept == frozen and 0 < int(said.group(1)) <= kept  # the driver's count, a lower bound

    # submitted again, its end polled: sbatch --wait would poll after 2, 8, then every 32 s
    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                           check=True).stdout.strip()

    def record() -> str:
        return local_slurm.run("scontrol", "show", "job", again).stdout

    wait_for(lambda: re.search(r"JobState=(?!PENDING|RUNNING|CONFIGURING|COMPLETING)", record()),
             "the resubmitted client job to end", 300, step=0.2)
    log = (tmp_path / f"client-{again}.log").read_text()
    assert "JobState=COMPLETED" in record() and "ExitCode=0:0" in record(), log
    assert "exists: finishing it with --resume" in log
    assert f"done: {TOTAL - kept} block(s) restored, {kept} already done" in log, log
    assert levels(out) == reference
    assert digest(inp) == inp_digest
    assert not local_slurm.jobs()


def test_slurm_refuses_a_worker_job_slurm_would_reject(tmp_path, local_slurm, volume, models,
                                                       cli):
    inp, _, _ = volume
    bad = profile(tmp_path, local_slurm, "bad.yaml", partition="no-such-partition")
    before = digest(tmp_path)
    code, _, err = cli("run", inp, tmp_path / "o.ome.zarr", "--model", models["fast"],
                       "--cluster", "slurm", "--profile", bad, "--no-progress")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"Error: SLURM refuses the worker job of profile {bad}")
    assert "invalid partition" in lines[0]
    assert digest(tmp_path) == before and not local_slurm.jobs()


def test_slurm_worker_jobs_that_die_at_start_give_a_clear_error(tmp_path, local_slurm, volume,
                                                                models, cli):
    inp, _, _ = volume
    bad = profile(tmp_path, local_slurm, "bad.yaml", python="/nonexistent/bin/python")
    code, _, err = cli("run", inp, tmp_path / "o.ome.zarr", "--model", models["fast"],
                       "--cluster", "slurm", "--profile", bad, "--no-progress")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "ended before a worker connected: see their logs in" in lines[0]
    assert not (tmp_path / "o.ome.zarr").exists() and not local_slurm.jobs()
