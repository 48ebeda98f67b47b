"""Clusters: the only module that imports ``dask.distributed`` (and, lazily,
``dask_cuda`` and ``dask_jobqueue``).

:func:`open_executor` turns a ``--cluster`` value into an executor the block
engine submits tasks to:

``local``
    A dask.distributed ``LocalCluster`` of worker processes (the default).
``cuda``
    dask-cuda's ``LocalCUDACluster``: one worker per GPU (``pip install
    "pssr-volume[cuda]"``).
``slurm``
    dask-jobqueue's ``SLURMCluster``: worker processes in SLURM jobs described
    by a profile (``--profile FILE``, see :mod:`pssr_volume.cluster.profile` and
    ``workflows/profiles/``). The scheduler runs in this process.
``tcp://HOST:PORT``
    An existing scheduler, e.g. one started by ``dask scheduler`` on a cluster.
``sync``
    Everything in this process, one task at a time (debugging, profiling).

:func:`check_cluster` checks the cluster settings of a run before any work
(profile, GPU, SLURM commands) and fills in the device a cluster implies.

Faults: a task whose worker dies is rescheduled by Dask; a task that raises is
retried twice. SLURM worker jobs that end (walltime, preemption, a node
failure) are replaced while the run lasts. SIGTERM (what SLURM sends when an
allocation ends) shuts the cluster down, cancels its jobs and ends the run
with a one-line error; finished blocks are kept for ``--resume``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pssr_volume.cluster.profile import SlurmProfile, load_profile
from pssr_volume.config import RunConfig
from pssr_volume.device import gpu_count
from pssr_volume.errors import PssrError

_ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}
CUDA_EXTRA_HINT = 'pip install "pssr-volume[cuda]"'
REPLACE_INTERVAL_S = 30.0  # how often ended SLURM jobs are looked for and replaced


class DaskExecutor:
    """Submit tasks to a dask.distributed client.

    Tasks are retried ``retries`` times if they raise; tasks of a worker that
    dies are rescheduled by Dask itself. ``planned_workers`` is the number of
    workers the cluster is scaling to (SLURM jobs start one by one), so that
    enough tasks are queued for all of them.
    """

    def __init__(self, client: Any, torch_threads: int = 0, retries: int = 2,
                 planned_workers: int = 0):
        self.client, self.torch_threads, self.retries = client, torch_threads, retries
        self.planned_workers = planned_workers

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None) -> Any:
        return self.client.submit(fn, *args, key=key, pure=False, retries=self.retries)

    def completion_queue(self) -> Any:
        from dask.distributed import as_completed

        # on this client's loop: the process's default client may be another one
        return as_completed(loop=self.client.loop)

    def cancel(self, futures: Sequence[Any]) -> None:
        self.client.cancel(list(futures))

    @property
    def n_workers(self) -> int:
        connected = len(self.client.scheduler_info().get("workers", {}))
        return max(1, connected, self.planned_workers)

    @property
    def dashboard(self) -> str | None:
        return getattr(self.client, "dashboard_link", None)


class _Done:
    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value, self.error = value, error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class _Queue:
    def __init__(self) -> None:
        self.items: collections.deque[_Done] = collections.deque()

    def add(self, future: _Done) -> None:
        self.items.append(future)

    def __next__(self) -> _Done:
        if not self.items:
            raise StopIteration
        return self.items.popleft()


class SerialExecutor:
    """Run each task immediately in this process (no Dask): ``--cluster sync``."""

    torch_threads = 0
    dashboard = None
    n_workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None) -> _Done:
        resolved = [a.result() if isinstance(a, _Done) else a for a in args]
        try:
            return _Done(fn(*resolved))
        except Exception as e:  # surfaced by result(), like a Dask future
            return _Done(error=e)

    def completion_queue(self) -> _Queue:
        return _Queue()

    def cancel(self, futures: Sequence[_Done]) -> None:
        pass


# --------------------------------------------------------------------------- checks


def _require_gpu(what: str) -> None:
    if gpu_count() == 0:
        raise PssrError(f"{what} needs a CUDA GPU, and none is visible here "
                        "(use --cluster local --device cpu, or run on a GPU node)")


def _require_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise PssrError("--cluster slurm needs the SLURM commands (sbatch) on PATH: run on a "
                        "login node or inside a job (see workflows/slurm/run.sbatch)")


def check_cluster(config: RunConfig) -> RunConfig:
    """Check the cluster settings of a run before any work is done.

    Loads and validates the ``--profile`` of ``--cluster slurm`` and makes its
    device (``cuda`` when it requests GPUs) the run's default; checks that a
    GPU is visible for ``--cluster cuda`` and for ``--device cuda`` on a
    local cluster, and that dask-cuda is installed for ``--cluster cuda``.

    Returns
    -------
    RunConfig
        ``config``, with ``device`` filled in from the profile when it was not given.

    Raises
    ------
    PssrError
        One line naming the problem (exit status 2 on the command line).
    """
    cluster = config.cluster
    if config.profile is not None and cluster != "slurm":
        raise PssrError(f"--profile is only used with --cluster slurm, not --cluster {cluster}")
    if cluster == "slurm":
        if config.profile is None:
            raise PssrError("--cluster slurm needs --profile FILE (examples: "
                            "workflows/profiles/cpu.yaml and gpu.yaml)")
        profile = load_profile(config.profile)
        _require_sbatch()
        if config.device is None:
            config = config.model_copy(update={"device": profile.device})
    elif cluster == "cuda":
        _require_gpu("--cluster cuda")
        try:
            import dask_cuda  # noqa: F401
        except ImportError:
            raise PssrError(f"--cluster cuda needs dask-cuda: {CUDA_EXTRA_HINT}") from None
    elif cluster in ("local", "sync") and config.device == "cuda":
        _require_gpu("--device cuda")
    return config


# --------------------------------------------------------------------------- clusters


def _local(workers: int) -> tuple[Any, Any]:
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True,
        dashboard_address=":0", silence_logs=logging.ERROR,
    )
    return cluster, Client(cluster)


def _cuda(workers: int | None) -> tuple[Any, Any]:
    _require_gpu("--cluster cuda")
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise PssrError(f"--cluster cuda needs dask-cuda: {CUDA_EXTRA_HINT}") from None
    from dask.distributed import Client

    try:
        cluster = LocalCUDACluster(
            n_workers=workers, threads_per_worker=1, silence_logs=logging.ERROR,
            dashboard_address=":0",
        )
    except Exception as e:  # NVML missing, no GPU visible, driver errors
        raise PssrError(f"--cluster cuda: no usable GPU ({_first_line(e)})") from None
    return cluster, Client(cluster)


def _tcp(address: str) -> Any:
    from dask.distributed import Client

    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise PssrError(f"cannot reach the scheduler at {address}: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def slurm_cluster_kwargs(profile: SlurmProfile) -> dict[str, Any]:
    """dask-jobqueue ``SLURMCluster`` arguments for a profile.

    Each worker process runs one task at a time (``cores`` given to Dask is
    the number of processes); the job reserves ``profile.cores`` CPUs, which
    the processes share as torch threads.
    """
    directives = list(profile.job_extra_directives)
    if profile.gres():
        directives.append(f"--gres={profile.gres()}")
    kwargs: dict[str, Any] = {
        "queue": profile.partition,
        "account": profile.account,
        "cores": profile.processes,
        "processes": profile.processes,
        "job_cpu": profile.cores,
        "memory": profile.memory,
        "walltime": profile.walltime,
        "job_name": profile.job_name,
        "job_extra_directives": directives,
        "job_directives_skip": list(profile.job_directives_skip),
        "job_script_prologue": list(profile.job_script_prologue),
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


def _sbatch_test_only(script: str, where: str) -> None:
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
                           where: str) -> None:
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


def _slurm(profile_path: str, workers: int | None) -> tuple[Any, Any, SlurmProfile]:
    profile = load_profile(profile_path)
    _require_sbatch()
    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster

    try:
        cluster = SLURMCluster(**slurm_cluster_kwargs(profile))
    except Exception as e:  # bad interface, unwritable log directory, ...
        raise PssrError(f"cannot start a SLURM cluster from profile {profile_path}: "
                        f"{_first_line(e)}") from None
    try:
        _sbatch_test_only(cluster.job_script(), profile_path)
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
        _wait_for_first_worker(client, cluster, profile, profile_path)
    except BaseException:
        client.close()
        cluster.close()
        raise
    return cluster, client, profile


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM; a BaseException, so that no
    ``except Exception`` on the way mistakes it for a task error."""


@contextlib.contextmanager
def _sigterm_stops_cleanly() -> Iterator[None]:
    """Make SIGTERM (SLURM's notice that a job ends) unwind the ``with`` body, so the
    cluster is shut down and its jobs cancelled, then report it as one line. A second
    SIGTERM is not caught."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, previous)
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated as e:
        raise PssrError("terminated by SIGTERM (job cancelled or out of time): finished blocks "
                        "are kept; rerun with --resume") from e
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def open_executor(cluster: str, workers: int | None = None, device: str = "cpu",
                  profile: str | Path | None = None) -> Iterator[Any]:
    """Start (or connect to) the cluster named by ``--cluster`` and yield an executor.

    Parameters
    ----------
    cluster : str
        ``local``, ``cuda``, ``slurm``, ``sync`` or ``tcp://HOST:PORT``.
    workers : int, optional
        Worker processes (``local``, ``cuda``; for ``slurm`` it overrides the
        profile's job count). Default: one per GPU, else up to 4.
    device : str
        The run's device; a local cluster for ``cuda`` has one worker.
    profile : str or Path, optional
        The SLURM profile (``slurm`` only).

    Clusters this function starts are shut down on exit (SLURM jobs are
    cancelled, also on SIGTERM); a ``tcp://`` scheduler is only disconnected from.

    Raises
    ------
    PssrError
        For an unknown cluster, a bad profile, a missing GPU or extra, an
        unreachable scheduler, or SLURM workers that do not start.
    """
    cores = os.cpu_count() or 1
    if cluster == "sync":
        yield SerialExecutor()
        return
    with _sigterm_stops_cleanly():
        started: Any = None
        keeper: _JobKeeper | None = None
        planned = 0
        if cluster == "local":
            n = workers or (1 if device == "cuda" else max(1, min(4, cores)))
            started, client = _local(n)
            threads = max(1, cores // n)
        elif cluster == "cuda":
            started, client = _cuda(workers)
            threads = 0
        elif cluster.startswith("tcp://") and len(cluster) > len("tcp://"):
            client, threads = _tcp(cluster), 0
        elif cluster == "slurm":
            if profile is None:
                raise PssrError("--cluster slurm needs --profile FILE")
            started, client, prof = _slurm(str(profile), workers)
            threads, planned = prof.threads, workers or prof.max_workers
            max_jobs = -(-planned // prof.processes)
            keeper = _JobKeeper(started, REPLACE_INTERVAL_S, limit=2 * max_jobs)
            keeper.start()
        else:
            raise PssrError(
                f"unknown --cluster {cluster!r}: use local, cuda, slurm, sync or tcp://HOST:PORT"
            )
        try:
            yield DaskExecutor(client, torch_threads=threads, planned_workers=planned)
        finally:
            if keeper is not None:
                keeper.stop()
            client.close()
            if started is not None:
                started.close()
