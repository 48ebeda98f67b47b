"""Mixed precision: which autocast dtype ``--amp`` means on a device, and the autocast
context the forward passes run under."""

from __future__ import annotations

import contextlib

import torch


def amp_dtype(setting: str, device: str) -> torch.dtype | None:
    """The autocast dtype for ``--amp`` on ``device``: never on CPU; ``auto`` is bf16
    where the GPU supports it, else fp16."""
    if not device.startswith("cuda") or setting == "off":
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def autocast(device: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on CUDA; no autocast when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)
