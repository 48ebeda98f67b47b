"""Which torch device a command computes on, decided in one place."""

from __future__ import annotations


def gpu_count() -> int:
    """CUDA devices torch can see in this process (0 without a GPU or a CPU-only torch)."""
    import torch

    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # broken driver installs raise here
        return 0


def choose_device(requested: str | None, cluster: str | None = None) -> str:
    """The device to use: ``requested`` when given, else the best one this place has.

    ``cluster`` is where the work runs: ``cuda`` always means a GPU; in this process or
    on a local cluster (``None``, ``sync``, ``local``) a visible GPU is used; elsewhere
    (``slurm``, ``tcp://...``) the workers' machines are unknown here, so ``cpu``
    unless the caller (a SLURM profile) says otherwise.
    """
    if requested is not None:
        return requested
    if cluster == "cuda":
        return "cuda"
    if cluster in (None, "sync", "local") and gpu_count() > 0:
        return "cuda"
    return "cpu"
