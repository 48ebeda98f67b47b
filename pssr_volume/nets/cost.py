"""What a network costs per output pixel, counted by torch's FLOP counter."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def gflop_per_out_mpx(module: nn.Module, in_slices: int, scale: int, tile: int = 64) -> float:
    """GFLOP per output megapixel of one forward pass on a ``tile``-square input.

    Convolutions, matrix products and attention are counted (2 FLOP per multiply-add);
    interpolation, activations and other elementwise work are not. For convolutional
    networks the figure does not depend on the tile size, up to border effects.
    """
    x = torch.zeros(1, in_slices, tile, tile)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(x)
    return counter.get_total_flops() / (scale * tile) ** 2 / 1e3
