"""The configuration of ``pssr-volume train``: validated once, saved next to the model it
makes (the other commands' models: :mod:`pssr_volume.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pssr_volume.config import Device, Strict


class TrainConfig(Strict):
    """Everything ``pssr-volume train`` needs; saved next to the model it makes."""

    inputs: tuple[Path, ...]
    out: Path
    name: str = "pssr-model"
    architecture: str = "pssr-fast"
    arch_args: dict[str, Any] = Field(default_factory=dict)
    scale: int = Field(4, ge=1, le=16)
    in_slices: int = Field(1, ge=1, le=9)
    noise_input: bool = False  # noise-aware: the network is told its input's noise model
    init: Path | None = None  # start from this model's weights (fine-tuning)
    crappifier: str = "mix"
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(16, ge=1)
    tile: int = Field(256, ge=16)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    val_tiles: int = Field(32, ge=1)
    val_every: int = Field(200, ge=1)
    seed: int = 0
    device: Device | None = None
    threads: int = Field(0, ge=0)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    workers: int = Field(0, ge=0)
    loss: Literal["l1", "mse", "ssim", "mse-ssim"] = "l1"
    # loss "ssim": w (1 - SSIM) + (1 - w) L1; "mse-ssim": w (1 - SSIM) + (1 - w) MSE
    ssim_weight: float = Field(0.8, ge=0, le=1)

    @field_validator("inputs")
    @classmethod
    def _some_inputs(cls, v: tuple[Path, ...]) -> tuple[Path, ...]:
        if not v:
            raise ValueError("at least one high-resolution input is needed")
        for p in v:
            if any(part.lower().startswith("holdout") for part in Path(p).resolve().parts):
                raise ValueError(f"{p} is hold-out data, for evaluation only (never training)")
        return v

    @model_validator(mode="after")
    def _noise_tile(self) -> TrainConfig:
        # the noise estimate of a low-resolution tile needs 11 x 11 pixels at least
        if self.noise_input and self.tile < 11 * self.scale:
            raise ValueError(f"noise-aware training needs --tile of at least {11 * self.scale} "
                             f"(11 low-resolution pixels at x{self.scale}), got {self.tile}")
        return self
