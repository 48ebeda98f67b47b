"""The cluster settings of a run, checked before any work (profile, GPU, SLURM commands,
scheduler address) and resolved into one :class:`ClusterSpec`: the parsed profile, the
device, the torch threads and the workers. The plan (:func:`pssr_volume.plan.make_plan`)
takes its device and threads from it; :func:`pssr_volume.cluster.executors.open_executor`
starts the cluster it names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pssr_volume.cluster.profile import SlurmProfile, load_profile
from pssr_volume.cluster.scheduler import (
    CONNECT_TIMEOUT_S,
    check_address,
    is_address,
    probe_scheduler,
)
from pssr_volume.cluster.slurm import _require_sbatch
from pssr_volume.config import ExecutionConfig
from pssr_volume.device import choose_device, gpu_count
from pssr_volume.errors import PssrError

CUDA_EXTRA_HINT = 'pip install "pssr-volume[cuda]"'


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster settings of a run, checked and resolved once by :func:`check_cluster`.

    Attributes
    ----------
    cluster : str
        ``local``, ``cuda``, ``slurm``, ``sync`` or ``tcp://HOST:PORT``.
    profile : SlurmProfile or None
        The parsed ``--profile`` (``slurm`` only).
    profile_path : Path or None
        Its file, named in error messages.
    device : str
        The device the workers compute on: ``--device``, else the profile's
        device for ``slurm``, else the best one (see :func:`~pssr_volume.device.choose_device`).
    threads : int
        Torch threads per worker process: the cores shared by the workers of a
        ``local`` cluster or a SLURM job; 0 leaves torch's default (``sync``,
        ``cuda`` and ``tcp://``).
    workers : int or None
        Worker processes: ``--workers``, else one per GPU or up to 4 on a
        ``local`` cluster; 1 for ``sync``; None lets the cluster decide (one per
        GPU for ``cuda``, the profile's jobs for ``slurm``, the scheduler's for
        ``tcp://``).
    gpu : str or None
        The GPU model the profile asks for (``gpu_type``), which a plan is made for.
    """

    cluster: str
    profile: SlurmProfile | None
    profile_path: Path | None
    device: str
    threads: int
    workers: int | None
    gpu: str | None = None


MAX_WORKERS_PER_CORE = 4  # local worker processes: more only compete for the same cores


def _require_gpu(what: str) -> None:
    if gpu_count() == 0:
        raise PssrError(f"{what} needs a CUDA GPU, and none is visible here "
                        "(use --cluster local --device cpu, or run on a GPU node)")


def check_cluster(config: ExecutionConfig) -> ClusterSpec:
    """Check the cluster settings of a run before any work is done.

    Loads and validates the ``--profile`` of ``--cluster slurm`` and makes its
    device (``cuda`` when it requests GPUs) the run's default; checks that a
    GPU is visible for ``--cluster cuda`` and for ``--device cuda`` on a
    local cluster, that dask-cuda is installed for ``--cluster cuda``, and that a
    Dask scheduler answers at a ``tcp://HOST:PORT`` address (within
    :data:`CONNECT_TIMEOUT_S`).

    Returns
    -------
    ClusterSpec
        The resolved settings: profile, device, torch threads and workers.

    Raises
    ------
    PssrError
        One line naming the problem (exit status 2 on the command line).
    """
    device: str | None  # --device, else the profile's device (any torch device string)
    cluster, device, workers = config.cluster, config.device, config.workers
    profile, threads = None, 0
    # a dry run plans for the target anywhere (a login node has no GPU, maybe no sbatch):
    # only a real run needs the device, dask-cuda and SLURM
    real = not getattr(config, "dry_run", False)
    if config.profile is not None and cluster != "slurm":
        raise PssrError(f"--profile is only used with --cluster slurm, not --cluster {cluster}")
    if cluster == "slurm":
        if config.profile is None:
            raise PssrError("--cluster slurm needs --profile FILE (examples: "
                            "workflows/profiles/cpu.yaml and gpu.yaml)")
        profile = load_profile(config.profile)
        if real:
            _require_sbatch()
        device, threads = device or profile.device, profile.threads
    elif cluster == "cuda":
        if real:
            _require_gpu("--cluster cuda")
            try:
                import dask_cuda  # noqa: F401
            except ImportError:
                raise PssrError(f"--cluster cuda needs dask-cuda: {CUDA_EXTRA_HINT}") from None
    elif cluster in ("local", "sync"):
        if device == "cuda" and real:
            _require_gpu("--device cuda")
    elif is_address(cluster):
        check_address(cluster)
        probe_scheduler(cluster, CONNECT_TIMEOUT_S)  # before planning samples the input
    elif cluster not in ("local", "sync"):
        raise _unknown(cluster)
    device = choose_device(device, cluster)
    if cluster == "local":
        cores = os.cpu_count() or 1
        if workers is not None and workers > MAX_WORKERS_PER_CORE * cores:
            raise PssrError(f"--workers {workers}: this machine has {cores} core(s), and a local "
                            f"cluster starts at most {MAX_WORKERS_PER_CORE} worker processes per "
                            "core (each loads the model and takes memory); use --cluster slurm "
                            "or tcp://HOST:PORT to spread a run over more machines")
        workers = workers or (1 if device == "cuda" else max(1, min(4, cores)))
        threads = max(1, cores // workers)
    elif cluster == "sync":
        workers = 1
    return ClusterSpec(cluster, profile, config.profile, device, threads, workers,
                       None if profile is None or not profile.gpus else profile.gpu_type)


def _unknown(cluster: str) -> PssrError:
    return PssrError(f"unknown --cluster {cluster!r}: use local, cuda, slurm, sync or "
                     "tcp://HOST:PORT")
