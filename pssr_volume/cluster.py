"""Clusters: the only module that imports ``dask.distributed`` (and, lazily,
``dask_cuda`` and ``dask_jobqueue``).

:func:`open_executor` turns a ``--cluster`` value into an executor the block
engine submits tasks to:

``local``
    A dask.distributed ``LocalCluster`` of worker processes (the default).
``cuda``
    dask-cuda's ``LocalCUDACluster``: one worker per GPU (``pip install
    "pssr-volume[cuda]"``).
``tcp://HOST:PORT``
    An existing scheduler, e.g. one started by ``dask scheduler`` on a cluster.
``sync``
    Everything in this process, one task at a time (debugging, profiling).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pssr_volume.errors import PssrError


class DaskExecutor:
    """Submit tasks to a dask.distributed client.

    Tasks are retried ``retries`` times if they raise; tasks of a worker that
    dies are rescheduled by Dask itself.
    """

    def __init__(self, client: Any, torch_threads: int = 0, retries: int = 2):
        self.client, self.torch_threads, self.retries = client, torch_threads, retries

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None) -> Any:
        return self.client.submit(fn, *args, key=key, pure=False, retries=self.retries)

    def completion_queue(self) -> Any:
        from dask.distributed import as_completed

        return as_completed()

    def cancel(self, futures: Sequence[Any]) -> None:
        self.client.cancel(list(futures))

    @property
    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

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


def _local(workers: int, threads: int) -> Any:
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True,
        dashboard_address=":0", silence_logs=logging.ERROR,
    )
    return cluster, Client(cluster)


def _cuda(workers: int | None) -> Any:
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise PssrError(
            '--cluster cuda needs dask-cuda: pip install "pssr-volume[cuda]"'
        ) from None
    from dask.distributed import Client

    try:
        cluster = LocalCUDACluster(
            n_workers=workers, threads_per_worker=1, silence_logs=logging.ERROR,
            dashboard_address=":0",
        )
    except Exception as e:  # NVML missing, no GPU visible, driver errors
        raise PssrError(f"--cluster cuda: no usable GPU ({type(e).__name__}: {e})") from None
    return cluster, Client(cluster)


@contextlib.contextmanager
def open_executor(cluster: str, workers: int | None = None, device: str = "cpu",
                  profile: str | None = None) -> Iterator[Any]:
    """Start (or connect to) the cluster named by ``--cluster`` and yield an executor.

    Clusters this function starts are shut down on exit; a ``tcp://``
    scheduler is only disconnected from.
    """
    cores = os.cpu_count() or 1
    if cluster == "sync":
        yield SerialExecutor()
        return
    if cluster == "local":
        n = workers or (1 if device == "cuda" else max(1, min(4, cores)))
        started, client = _local(n, max(1, cores // n))
        threads = max(1, cores // n)
    elif cluster == "cuda":
        started, client = _cuda(workers)
        threads = 0
    elif cluster.startswith("tcp://"):
        from dask.distributed import Client

        try:
            client = Client(cluster, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise PssrError(f"cannot reach the scheduler at {cluster}: {e}") from None
        started, threads = None, 0
    elif cluster == "slurm":
        raise PssrError("--cluster slurm is not available in this version")
    else:
        raise PssrError(
            f"unknown --cluster {cluster!r}: use local, cuda, slurm, sync or tcp://HOST:PORT"
        )
    try:
        yield DaskExecutor(client, torch_threads=threads)
    finally:
        client.close()
        if started is not None:
            started.close()
