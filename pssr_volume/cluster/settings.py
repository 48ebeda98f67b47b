"""The Dask settings of the clusters this tool starts (``--cluster local``, ``cuda``, ``slurm``).

Dask's defaults suit interactive work, where a dashboard shows what every worker does. Here
they cost CPU that the blocks need: each worker's statistical profiler (a stack sample of the
task's thread every 10 ms, taking the GIL), the event loops' latency tick (every 20 ms, in
every worker, nanny, scheduler and client), the system monitor (every 500 ms) and, where
``gilknocker`` is installed, the GIL monitor (every 1 ms). :data:`DASK_SETTINGS` turns the
profiler and the GIL monitor off and makes the other two rarer. On a warm ``--cluster local``
run (benchmarks/bench_write.py, 2 workers, docs/PERFORMANCE.md) Dask's event loops then used
27-33 instead of 55-69 ms of CPU a block (of about 350), the driver 21-26 instead of 31-33 ms;
the simulated clusters of benchmarks/bench_scale.py were already measured this way.

What is lost: the dashboard's "Profile" page stays empty and its system plots update every
2 s. Dask still warns about a blocked event loop (``distributed.admin.tick.limit``, 3 s).
A scheduler the user starts (``--cluster tcp://...``) keeps its own settings.

:func:`cluster_settings` applies them, with the workers' C allocator environment
(:data:`pssr_volume.allocator.WORKER_ENVIRON`), around starting a cluster in this process:
nannies hand their configuration to the worker processes they start. SLURM worker jobs
get the same as ``export`` lines (:func:`worker_exports`), Dask's environment variables.
"""

from __future__ import annotations

from typing import Any

from pssr_volume.allocator import WORKER_ENVIRON

DASK_SETTINGS: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def cluster_settings(dask_defaults: bool = False) -> Any:
    """A context in which the Dask objects created (scheduler, nannies, workers, client)
    take :data:`DASK_SETTINGS`, and nannies start workers with ``WORKER_ENVIRON``; with
    ``dask_defaults``, Dask's own settings and only the environment (to compare)."""
    import dask

    key = "distributed.nanny.pre-spawn-environ"
    environ = {key: {**dask.config.get(key, {}), **WORKER_ENVIRON}}
    return dask.config.set(environ if dask_defaults else {**DASK_SETTINGS, **environ})


def _environ_name(key: str) -> str:
    return "DASK_" + "__".join(part.upper().replace("-", "_") for part in key.split("."))


def worker_exports() -> list[str]:
    """Shell lines that give a worker started elsewhere (a SLURM job) the same settings."""
    lines = [f"export {k}={v}" for k, v in WORKER_ENVIRON.items()]
    return lines + [f"export {_environ_name(k)}={v}" for k, v in DASK_SETTINGS.items()]
