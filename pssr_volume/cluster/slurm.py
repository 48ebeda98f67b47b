"""SLURM worker jobs for ``--cluster slurm``: start them, watch them, replace them.

:func:`start_slurm` turns a checked profile (see :mod:`pssr_volume.cluster.profile`)
into a dask-jobqueue ``SLURMCluster`` whose scheduler runs in this process. Before
any job is submitted, ``sbatch --test-only`` asks SLURM whether it would accept
the worker job, so a bad partition or account fails at once with SLURM's own
message. It then waits for the first worker, and fails with one line when the
jobs end before a worker connects or none connects in time.

dask-jobqueue does not replace a job that ends on its own (walltime, preemption,
a node failure); :class:`_JobKeeper` does, while the run lasts.

:func:`pssr_volume.cluster.executors.open_executor` uses this module; nothing
here knows about executors.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pssr_volume.cluster.profile import SlurmProfile
from pssr_volume.cluster.settings import cluster_settings, worker_exports
from pssr_volume.compute_slot import TASK_THREADS
from pssr_volume.errors import PssrError, first_line

_ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}
REPLACE_INTERVAL_S = 30.0  # how often ended SLURM jobs are looked for and replaced


def _require_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise PssrError("--cluster slurm needs the SLURM commands (sbatch) on PATH: run on a "
                        "login node or inside a job (see workflows/slurm/run.sbatch)")


def slurm_cluster_kwargs(profile: SlurmProfile) -> dict[str, Any]:
    """dask-jobqueue ``SLURMCluster`` arguments for a profile.

    Each worker process runs :data:`~pssr_volume.compute_slot.TASK_THREADS` task threads
    (``cores`` given to Dask is that times the number of processes), of which one computes
    at a time while the others commit their writes; the job reserves ``profile.cores`` CPUs,
    which the processes share as torch threads.
    """
    directives = list(profile.job_extra_directives)
    if profile.gres():
        directives.append(f"--gres={profile.gres()}")
    kwargs: dict[str, Any] = {
        "queue": profile.partition,
        "account": profile.account,
        "cores": profile.processes * TASK_THREADS,
        "processes": profile.processes,
        "job_cpu": profile.cores,
        "memory": profile.memory,
        "walltime": profile.walltime,
        "job_name": profile.job_name,
        "job_extra_directives": directives,
        "job_directives_skip": list(profile.job_directives_skip),
        # the environment and Dask settings of --cluster local workers (cluster.settings),
        # then the profile's own lines (which may change them)
        "job_script_prologue": worker_exports() + list(profile.job_script_prologue),
        "worker_extra_args": list(profile.worker_extra_args),
        "death_timeout": profile.death_timeout,
        "scheduler_options": {"dashboard_address": profile.dashboard_address},
        "silence_logs": "error",
    }
    optional = {"local_directory": profile.local_directory, "interface": profile.interface,
                "python": profile.python,
                "log_directory": profile.log_directory and os.path.expandvars(
                    os.path.expanduser(profile.log_directory))}
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    return kwargs


def _sbatch_test_only(script: str, where: str | Path) -> None:
    """Ask SLURM whether it would accept the worker job (``sbatch --test-only``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="pssr-worker-") as f:
        f.write(script)
        f.flush()
        try:
            r = subprocess.run(["sbatch", "--test-only", f.name], capture_output=True,
                               text=True, timeout=60)
        except FileNotFoundError:
            _require_sbatch()
            raise
        except subprocess.TimeoutExpired:
            raise PssrError("sbatch --test-only did not answer within 60 s: is slurmctld "
                            "reachable?") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()] or lines or ["no message"]
        raise PssrError(f"SLURM refuses the worker job of profile {where}: {errors[-1]}")


def _job_ids(cluster: Any) -> list[str]:
    for _ in range(5):  # the cluster's event loop may be changing the dict
        with contextlib.suppress(RuntimeError):
            return [j.job_id for j in list(cluster.workers.values()) if j.job_id]
    return []


def _queued(ids: Sequence[str]) -> set[str]:
    """The jobs of ``ids`` that SLURM still lists as pending or running."""
    r = subprocess.run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(ids)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and "Invalid job id" not in r.stderr:
        raise OSError(f"squeue failed: {r.stderr.strip()}")
    alive = set()
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in _ALIVE:
            alive.add(parts[0])
    return alive & set(ids)


def _wait_for_first_worker(client: Any, cluster: Any, profile: SlurmProfile,
                           where: str | Path) -> None:
    logs = profile.log_directory or "the current directory"
    deadline = time.monotonic() + profile.startup_timeout
    while True:
        if client.scheduler_info().get("workers"):
            return
        ids = _job_ids(cluster)
        try:
            ended = bool(ids) and len(ids) >= len(cluster.worker_spec) and not _queued(ids)
        except (OSError, subprocess.SubprocessError):
            ended = False
        if ended:
            raise PssrError(f"the SLURM worker jobs ({', '.join(ids)}) of profile {where} ended "
                            f"before a worker connected: see their logs in {logs}")
        if time.monotonic() > deadline:
            state = f"jobs {', '.join(ids)}" if ids else "no job submitted"
            raise PssrError(f"no SLURM worker connected within {profile.startup_timeout:g} s "
                            f"({state}; check `squeue --me` and the worker logs in {logs}; "
                            "raise startup_timeout in the profile to wait longer)")
        with contextlib.suppress(TimeoutError, OSError):
            client.wait_for_workers(1, timeout=2)


class _JobKeeper(threading.Thread):
    """Resubmit SLURM worker jobs that ended (walltime, ``--lifetime``, preemption,
    node loss) while a run lasts.

    dask-jobqueue does not replace a job that ends on its own. Every
    ``interval`` seconds this asks ``squeue`` which of the cluster's jobs are
    gone, forgets them and rescales to the cluster's current plan (on its event
    loop), which submits replacements. At most ``limit`` jobs are replaced in
    any 10 minutes, so a job that fails at once is not resubmitted in a loop.
    """

    def __init__(self, cluster: Any, interval: float, limit: int):
        super().__init__(name="pssr-slurm-keeper", daemon=True)
        self.cluster, self.interval, self.limit = cluster, interval, limit
        self.stopped = threading.Event()
        self.replaced: list[float] = []  # when each replacement was asked for

    def _top_up(self, gone: set[str]) -> None:
        if self.stopped.is_set():
            return
        for name, job in list(self.cluster.workers.items()):
            if job.job_id in gone:
                del self.cluster.workers[name]
        self.cluster.scale(jobs=len(self.cluster.worker_spec))

    def check(self) -> None:
        """One round: find ended jobs and ask for replacements."""
        ids = _job_ids(self.cluster)
        gone = set(ids) - _queued(ids) if ids else set()
        missing = len(self.cluster.worker_spec) - (len(self.cluster.workers) - len(gone))
        now = time.monotonic()
        self.replaced = [t for t in self.replaced if now - t < 600]
        if missing <= 0 or len(self.replaced) + missing > self.limit:
            return
        self.replaced += [now] * missing
        self.cluster.loop.add_callback(self._top_up, gone)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with contextlib.suppress(Exception):  # squeue hiccups; the loop may be closing
                self.check()

    def stop(self) -> None:
        self.stopped.set()


def start_slurm(profile: SlurmProfile, where: str | Path, workers: int | None
                ) -> tuple[Any, Any, _JobKeeper]:
    """Start the worker jobs of a checked profile and wait for the first worker.

    Parameters
    ----------
    profile : SlurmProfile
        The profile, already loaded and validated.
    where : str or Path
        The profile's file, named in error messages.
    workers : int, optional
        Worker processes to scale to, instead of the profile's jobs.

    Returns
    -------
    tuple
        The ``SLURMCluster``, a client of it, and the started :class:`_JobKeeper`
        that replaces jobs that end; the caller stops the keeper and closes the
        client and the cluster (which cancels the jobs).

    Raises
    ------
    PssrError
        When the cluster cannot be made, SLURM refuses the worker job, or no
        worker connects.
    """
    _require_sbatch()
    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster

    try:
        with cluster_settings():  # the scheduler, in this process
            cluster = SLURMCluster(**slurm_cluster_kwargs(profile))
    except Exception as e:  # bad interface, unwritable log directory, ...
        raise PssrError(f"cannot start a SLURM cluster from profile {where}: "
                        f"{first_line(e)}") from None
    try:
        _sbatch_test_only(cluster.job_script(), where)
        with cluster_settings():
            client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    try:
        if workers:
            cluster.scale(n=workers)
        elif profile.adaptive is not None:
            cluster.adapt(minimum_jobs=profile.adaptive.minimum,
                          maximum_jobs=profile.adaptive.maximum)
        else:
            cluster.scale(jobs=profile.n_jobs)
        _wait_for_first_worker(client, cluster, profile, where)
    except BaseException:
        client.close()
        cluster.close()
        raise
    max_jobs = -(-(workers or profile.max_workers) // profile.processes)
    keeper = _JobKeeper(cluster, REPLACE_INTERVAL_S, limit=2 * max_jobs)
    keeper.start()
    return cluster, client, keeper
