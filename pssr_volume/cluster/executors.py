"""Clusters: where blocks run. With :mod:`pssr_volume.cluster.slurm`, the only
modules that import ``dask.distributed`` (and, lazily, ``dask_cuda`` and
``dask_jobqueue``).

:func:`open_executor` starts the cluster a :class:`~pssr_volume.cluster.spec.ClusterSpec`
names (checked and resolved before any work by
:func:`~pssr_volume.cluster.spec.check_cluster`) and yields an executor the block engine
submits tasks to:

``local``
    A dask.distributed ``LocalCluster`` of worker processes (the default).
``cuda``
    dask-cuda's ``LocalCUDACluster``: one worker per GPU (``pip install
    "pssr-volume[cuda]"``).
``slurm``
    dask-jobqueue's ``SLURMCluster``: worker processes in SLURM jobs described
    by a profile (``--profile FILE``, see :mod:`pssr_volume.cluster.profile` and
    ``workflows/profiles/``), started by :mod:`pssr_volume.cluster.slurm`. The
    scheduler runs in this process.
``tcp://HOST:PORT``
    An existing scheduler, e.g. one started by ``dask scheduler`` on a cluster.
``sync``
    Everything in this process, one task at a time (debugging, profiling).

Logs: the clusters this process starts on this machine (``local``, ``cuda``) write their
scheduler, nanny and worker logs, and anything the worker processes print, to a file
beside the output (``<output>.log``, see :mod:`pssr_volume.cluster.logs`), not to the
terminal: a failed, terminated or interrupted run prints one line, which names that file.

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
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pssr_volume.cluster.logs import logs_to
from pssr_volume.cluster.scheduler import connect, is_address
from pssr_volume.cluster.settings import cluster_settings
from pssr_volume.cluster.slurm import start_slurm
from pssr_volume.cluster.spec import CUDA_EXTRA_HINT, ClusterSpec, _require_gpu, _unknown
from pssr_volume.compute_slot import TASK_THREADS
from pssr_volume.errors import PssrError, RunFailed, first_line, kept


class DaskExecutor:
    """Submit tasks to a dask.distributed client.

    Tasks are retried ``retries`` times if they raise; tasks of a worker that
    dies are rescheduled by Dask itself. ``planned_workers`` is the number of
    workers the cluster is scaling to (SLURM jobs start one by one), so that
    enough tasks are queued for all of them.
    """

    def __init__(self, client: Any, retries: int = 2, planned_workers: int = 0):
        self.client, self.retries = client, retries
        self.planned_workers = planned_workers

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None) -> Any:
        return self.client.submit(fn, *args, key=key, pure=False, retries=self.retries)

    def submit_many(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]],
                    keys: Sequence[str]) -> list[Any]:  # one graph update for all
        return self.client.map(fn, *zip(*args), key=list(keys), pure=False,
                               retries=self.retries) if args else []

    def fetch(self, futures: Sequence[Any]) -> dict[Any, Any]:
        """The results of the ``futures`` that finished without error, in one gather."""
        done = [f for f in futures if f.status == "finished"]
        return dict(zip(done, self.client.gather(done))) if done else {}

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

    def next_batch(self) -> list[_Done]:
        batch = list(self.items)
        self.items.clear()
        return batch


class SerialExecutor:
    """Run each task immediately in this process (no Dask): ``--cluster sync``."""

    dashboard = None
    n_workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None) -> _Done:
        resolved = [a.result() if isinstance(a, _Done) else a for a in args]
        try:
            return _Done(fn(*resolved))
        except Exception as e:  # surfaced by result(), like a Dask future
            return _Done(error=e)

    def submit_many(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]],
                    keys: Sequence[str]) -> list[_Done]:
        return [self.submit(fn, *a) for a in args]

    def fetch(self, futures: Sequence[_Done]) -> dict[_Done, Any]:
        return {}  # each result() gives its value, or raises its error

    def completion_queue(self) -> _Queue:
        return _Queue()

    def cancel(self, futures: Sequence[_Done]) -> None:
        pass


# --------------------------------------------------------------------------- clusters


def _local(workers: int) -> tuple[Any, Any]:
    from dask.distributed import Client, LocalCluster

    with cluster_settings():
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=TASK_THREADS, processes=True,
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
        with cluster_settings():
            cluster = LocalCUDACluster(
                n_workers=workers, threads_per_worker=TASK_THREADS, silence_logs=logging.ERROR,
                dashboard_address=":0",
            )
    except Exception as e:  # NVML missing, no GPU visible, driver errors
        raise PssrError(f"--cluster cuda: no usable GPU ({first_line(e)})") from None
    with cluster_settings():
        return cluster, Client(cluster)


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
        raise RunFailed(f"terminated by SIGTERM (job cancelled or out of time): {kept(e)}; "
                        "rerun with --resume") from e
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def open_executor(spec: ClusterSpec, log_file: Path | None = None) -> Iterator[Any]:
    """Start (or connect to) the cluster of a checked run and yield an executor.

    Parameters
    ----------
    spec : ClusterSpec
        What :func:`check_cluster` resolved: the cluster (``local``, ``cuda``,
        ``slurm``, ``sync`` or ``tcp://HOST:PORT``), its worker processes (for
        ``slurm`` they override the profile's job count) and the SLURM profile.
    log_file : Path, optional
        Where a ``local`` or ``cuda`` cluster's logs go (see the module docstring;
        :func:`~pssr_volume.cluster.logs.worker_log_path` names the file of an output).
        Without it they go to stderr.

    Clusters this function starts are shut down on exit (SLURM jobs are
    cancelled, also on SIGTERM); a ``tcp://`` scheduler is only disconnected from.

    Raises
    ------
    PssrError
        For an unknown cluster, a missing GPU or extra, an unreachable
        scheduler, or SLURM workers that do not start.
    """
    cluster, workers = spec.cluster, spec.workers
    if cluster == "sync":
        yield SerialExecutor()
        return
    # a tcp:// scheduler's client logs comm errors and tracebacks here when the scheduler
    # goes away mid-run: to the file too, so that the run ends with one line
    logs = log_file if cluster in ("local", "cuda") or is_address(cluster) else None
    with logs_to(logs), _sigterm_stops_cleanly():
        started: Any = None
        keeper: Any = None
        planned = 0
        if cluster == "local":
            started, client = _local(workers or 1)
        elif cluster == "cuda":
            started, client = _cuda(workers)
        elif is_address(cluster):
            client = connect(cluster)
        elif cluster == "slurm":
            if spec.profile is None:
                raise PssrError("--cluster slurm needs --profile FILE")
            started, client, keeper = start_slurm(spec.profile, spec.profile_path or "",
                                                  workers)
            planned = workers or spec.profile.max_workers
        else:
            raise _unknown(cluster)
        try:
            yield DaskExecutor(client, planned_workers=planned)
        finally:
            if keeper is not None:
                keeper.stop()
            client.close()
            if started is not None:
                started.close()
