"""Which torch device a command computes on, decided in one place."""

from __future__ import annotations

import glob
import sys

# where a GPU driver shows its devices: NVIDIA's, ROCm's (torch.cuda is HIP there), WSL's
GPU_DEVICE_FILES = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def gpu_count() -> int:
    """CUDA devices torch can see in this process (0 without a GPU or a CPU-only torch).
    Where no GPU driver shows a device file torch is not loaded to ask (a second and 200
    MB: a plan on a login node needs neither)."""
    if "torch" not in sys.modules and not any(glob.glob(p) for p in GPU_DEVICE_FILES):
        return 0
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
