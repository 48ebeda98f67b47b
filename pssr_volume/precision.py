"""Mixed precision: which autocast dtype ``train --amp`` means on a device, whether a model
restores in bf16 here, and the autocast context forward passes run under."""

from __future__ import annotations

import contextlib

import torch


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there, bf16 autocast
    about halves a training step; elsewhere it emulates bf16 and is slower than fp32."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def amp_dtype(setting: str, device: str) -> torch.dtype | None:
    """The autocast dtype for ``--amp`` on ``device``.

    CUDA: ``auto`` is bf16 where the GPU supports it, else fp16. CPU: ``auto`` is bf16 where
    the CPU computes it natively (:func:`cpu_has_bf16`), else none; ``bf16`` forces it;
    ``fp16`` means none (CPU fp16 convolutions are emulated).
    """
    if setting == "off":
        return None
    if not device.startswith("cuda"):
        if setting == "bf16" or (setting == "auto" and cpu_has_bf16()):
            return torch.bfloat16
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def autocast(device: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on the device's type; no autocast when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu",
                          dtype=dtype)


def inference_dtype(bf16_allowed: bool, device: str) -> torch.dtype | None:
    """The autocast dtype a model restores with: bf16 where its file allows it (measured to
    keep blockwise == whole within 1 grey level and hold-out PSNR within 0.05 dB of float32,
    ``ModelConfig.bf16_inference``) and the device computes bf16 natively; else float32."""
    if not bf16_allowed:
        return None
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_bf16() else None
