"""Cost of an architecture: parameters, GFLOP per output megapixel, measured throughput.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one forward
pass (convolutions, matrix products and attention; 2 FLOP per multiply-add;
interpolation, activations and other elementwise work are not counted), divided by the
number of output pixels. For convolutional networks that is independent of the tile
size up to border effects; global self-attention grows with the tile area.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from pssr_volume.config import ModelConfig
from pssr_volume.nets.cost import gflop_per_out_mpx
from pssr_volume.nets.registry import build


@dataclass(frozen=True)
class Cost:
    """Size and compute of one architecture configuration.

    Attributes
    ----------
    architecture : str
        Registered name.
    arch_args : dict
        Its arguments.
    scale, in_slices : int
        Upsampling factor and input sections.
    params : int
        Trainable parameters.
    tile : int
        Input tile edge (px) the FLOPs were counted on.
    gflop_per_out_mpx : float
        GFLOP per output megapixel (10^6 output pixels).
    """

    architecture: str
    arch_args: dict[str, Any]
    scale: int
    in_slices: int
    params: int
    tile: int
    gflop_per_out_mpx: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def make(architecture: str, scale: int = 4, in_slices: int = 1,
         arch_args: dict[str, Any] | None = None) -> torch.nn.Module:
    """Build a registered architecture (randomly initialised, eval mode)."""
    cfg = ModelConfig(name=architecture, architecture=architecture, scale=scale,
                      in_slices=in_slices, arch_args=dict(arch_args or {}))
    return build(cfg).eval()


def count_params(module: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def cost(architecture: str, scale: int = 4, in_slices: int = 1,
         arch_args: dict[str, Any] | None = None, tile: int = 128) -> Cost:
    """Parameters and GFLOP per output megapixel of an architecture.

    Parameters
    ----------
    architecture : str
        A registered architecture name (``pssr-fast``, ``pssr-resunet``, ...).
    scale, in_slices : int
        Upsampling factor and number of input sections.
    arch_args : dict, optional
        Architecture arguments, as in a model file.
    tile : int
        Input tile edge in pixels (128 -> 512-px output tiles, PSSR's training size).
    """
    module = make(architecture, scale, in_slices, arch_args)
    return Cost(architecture, dict(arch_args or {}), scale, in_slices, count_params(module),
                tile, gflop_per_out_mpx(module, in_slices, scale, tile))


@torch.inference_mode()
def throughput(module: torch.nn.Module, in_slices: int, scale: int, tile: int = 128,
               batch: int = 4, repeats: int = 3, device: str = "cpu") -> float:
    """Output megapixels per second of the forward pass alone (best of ``repeats``,
    after one warm-up), on random input of ``batch`` tiles of ``tile`` px."""
    module = module.to(device).eval()
    x = torch.rand(batch, in_slices, tile, tile, device=device)
    best = float("inf")
    for i in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        module(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i > 0:
            best = min(best, time.perf_counter() - t0)
    return batch * (scale * tile) ** 2 / 1e6 / best
