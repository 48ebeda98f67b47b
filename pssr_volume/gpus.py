"""The GPUs a run can be planned for, by name: memory and FP32 throughput.

A plan for a GPU is made anywhere, also on a login node without one (``--dry-run``): its
task size and GPU-hours come from the GPU named by ``--gpu`` or by the SLURM profile's
``gpu_type``, else :data:`DEFAULT_GPU`. Throughput is the vendor's dense FP32 peak times a
stated :data:`EFFICIENCY` (the network runs in FP32 with TF32 off, for reproducible bytes);
it is a planning figure, not a measurement of this project's code on that card.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    """One GPU model."""

    name: str
    memory_gib: float
    fp32_tflops: float  # dense FP32 peak, vendor data sheet

    @property
    def gflops(self) -> float:
        """The planning rate: :data:`EFFICIENCY` of the FP32 peak, in GFLOP/s."""
        return self.fp32_tflops * 1000 * EFFICIENCY


EFFICIENCY = 0.3
GPUS = {g.name.lower(): g for g in (
    Gpu("V100", 32, 15.7),
    Gpu("A100", 80, 19.5),
    Gpu("A40", 48, 37.4),
    Gpu("A6000", 48, 38.7),
    Gpu("L40S", 48, 91.6),
    Gpu("H100", 80, 67.0),
    Gpu("H200", 141, 67.0),
)}
DEFAULT_GPU = "h100"


def gpu_named(name: str | None) -> Gpu:
    """The GPU ``name`` means (``"a100"``, ``"A100-80GB"``, ``"nvidia-h100"``; ``None``: the
    default). Raises ``ValueError`` for one not in :data:`GPUS`."""
    if name is None:
        return GPUS[DEFAULT_GPU]
    key = name.lower().removeprefix("nvidia").strip("-_ ")
    for known, gpu in GPUS.items():
        if key == known or key.startswith(known + "-") or key.startswith(known + "_"):
            return gpu
    raise ValueError(f"unknown GPU {name!r}: known are {', '.join(g.name for g in GPUS.values())}")
