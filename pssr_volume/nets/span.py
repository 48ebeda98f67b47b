"""An efficient super-resolution network in the style of SPAN (Wan et al., "Swift
Parameter-free Attention Network for Efficient Super-Resolution", CVPR workshops 2024; the
NTIRE 2024 efficient-SR winner).

Everything runs on the input grid, with no downsampling (so blocks may start at any input
pixel), and upsamples once at the end with a pixel shuffle. Each block is three 3x3
convolutions whose output also gates the block, without parameters of its own:
``(conv3(h) + x) * (sigmoid(conv3(h)) - 0.5)``. The feature maps of the head, the first and
the last block are concatenated and mixed by a 1x1 convolution before the tail. Like the other
networks here, the prediction is added to the bilinear upsample of the centre section.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pssr_volume.nets.registry import centre_slice, icnr_, register
from pssr_volume.nets.registry import conv as _conv


class AttentionBlock(nn.Module):
    """Three 3x3 convolutions and the parameter-free attention of SPAN's SPAB."""

    def __init__(self, width: int, gate: bool = True):
        super().__init__()
        self.c1, self.c2, self.c3 = (_conv(width, width) for _ in range(3))
        self.gate = gate  # False: h + x, same support (the receptive-field probe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c3(F.silu(self.c2(F.silu(self.c1(x)))))
        return (h + x) * (torch.sigmoid(h) - 0.5) if self.gate else h + x


@register("pssr-span")
class SPAN(nn.Module):
    """SPAN-style network at input resolution with a pixel-shuffle tail.

    Parameters
    ----------
    scale : int
        Upsampling factor in y and x.
    in_slices : int
        Adjacent sections given as channels (odd).
    width : int
        Feature channels.
    blocks : int
        Attention blocks (three 3x3 convolutions each).
    extra_channels : int
        Input channels after the sections (the noise map of a noise-aware model).
    gate : bool
        The blocks' attention gates (off only in the receptive-field probe).
    """

    downsampling = 1

    def __init__(self, scale: int = 4, in_slices: int = 1, width: int = 40, blocks: int = 6,
                 extra_channels: int = 0, gate: bool = True):
        super().__init__()
        if blocks < 1:
            raise ValueError("blocks must be >= 1")
        self.scale, self.in_slices, self.extra_channels = scale, in_slices, extra_channels
        self.head = _conv(in_slices + extra_channels, width)
        self.body = nn.ModuleList(AttentionBlock(width, gate) for _ in range(blocks))
        self.mix = _conv(3 * width, width, k=1)
        self.tail = _conv(width, scale**2)
        icnr_(self.tail, scale)
        with torch.no_grad():
            self.tail.weight.mul_(0.1)
            assert self.tail.bias is not None  # registry.conv makes biased convs
            self.tail.bias.zero_()

    def receptive_field_proxy(self) -> SPAN:
        """The same topology, narrow and without the gates (a saturated sigmoid would hide
        paths from the gradient probe; the gate's support is that of its input)."""
        return SPAN(self.scale, self.in_slices, width=2, blocks=len(self.body),
                    extra_channels=self.extra_channels, gate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(centre_slice(x, self.in_slices), scale_factor=self.scale,
                             mode="bilinear", align_corners=False)
        h0 = self.head(x)
        h = first = self.body[0](h0)
        for block in self.body[1:]:
            h = block(h)
        h = self.mix(torch.cat([h0, first, h], dim=1))
        return F.pixel_shuffle(self.tail(h), self.scale) + base
