"""``pssr-resunet``: the PSSR paper's network, written here without fastai or torchvision.

PSSR (Fang et al., Nat Methods 2021) upsamples the low-resolution input x``scale``
bilinearly and then runs a fastai ``DynamicUnet`` on the high-resolution grid:

* encoder: ResNet-34 (blocks 3, 4, 6, 3 of two 3x3 convolutions) with weight-normed
  convolutions and no BatchNorm, a 3-convolution stem (``c_in -> 32 -> 32 -> 64``, the
  first with stride 2), max-pooling, and average-pooled shortcuts where the stride is 2;
* a middle block (``512 -> 1024 -> 512``) at 1/32 resolution;
* four decoder blocks, each a pixel-shuffle x2 upsample (1x1 convolution, ICNR
  initialised, ReLU, shuffle, then a "blur": replication pad + 2x2 average, stride 1),
  concatenated with the encoder feature of that resolution, then two 3x3 convolutions;
  optional self-attention (global over the tile) in the third-from-last block;
* a final pixel-shuffle to full resolution, the (upsampled) input concatenated
  ("last cross"), a bottleneck residual block and a 1x1 convolution to one channel.

Differences from fastai v1 (none changes the topology): no BatchNorm anywhere (the
middle and skip BatchNorms of ``DynamicUnet`` are dropped, so blockwise inference equals
whole-image inference); self-attention uses plain 1x1 projections and the usual
``1/sqrt(d)`` scaling instead of spectral norm and unscaled logits; the last 1x1
convolution starts as the identity on the centre input section (the untrained network is
close to bilinear upsampling), and the last convolution of each residual branch starts
at 0.1 x its He initialisation instead of BatchNorm's zero-gamma trick. ``in_slices``
adjacent sections enter as channels (PSSR-MF).

Its total stride is 32 output pixels, so it is shift-equivariant in steps of
``32 / gcd(32, scale)`` input pixels (8 at x4): ``downsampling``. Inputs whose size is
not a multiple of that are replicate-padded inside and cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from pssr_volume.nets.registry import icnr_, register

STRIDE = 32  # total downsampling of the encoder, in output (high-resolution) pixels


def _ch(c: float, width: float) -> int:
    return max(1, round(c * width))


class Conv(nn.Sequential):
    """Convolution (weight-normed unless disabled), optional ReLU and self-attention."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, relu: bool = True,
                 wn: bool = True, gain: float = 1.0, attention: bool = False, bias: bool = True):
        conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        with torch.no_grad():
            conv.weight.mul_(gain)
            if bias:
                assert conv.bias is not None  # built with bias=True
                conv.bias.zero_()
        layers: list[nn.Module] = [_weight_norm(conv) if wn else conv]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        if attention:
            layers.append(SelfAttention(cout))
        super().__init__(*layers)


class SelfAttention(nn.Module):
    """SAGAN self-attention over all positions of the feature map (global over the tile).

    ``x + gamma * attention(x)`` with ``gamma`` starting at 0, so the block starts as the
    identity.
    """

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv2d(channels, inner, 1, bias=False)
        self.key = nn.Conv2d(channels, inner, 1, bias=False)
        self.value = nn.Conv2d(channels, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)[:, None]  # (n, 1, hw, inner)
        k = self.key(x).flatten(2).transpose(1, 2)[:, None]
        v = self.value(x).flatten(2).transpose(1, 2)[:, None]  # (n, 1, hw, c)
        o = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(n, c, h, w)
        return x + self.gamma * o


class BasicBlock(nn.Module):
    """ResNet basic block without normalisation: ``relu(convs(x) + shortcut(x))``.

    The shortcut average-pools (stride 2) and/or projects with a 1x1 convolution when the
    shape changes, as in PSSR's ``wnresnet``.
    """

    def __init__(self, cin: int, cout: int, stride: int, wn: bool):
        super().__init__()
        self.convs = nn.Sequential(
            Conv(cin, cout, stride=stride, wn=wn),
            Conv(cout, cout, relu=False, wn=wn, gain=0.1),
        )
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if stride > 1 else nn.Identity()
        self.proj = Conv(cin, cout, k=1, relu=False, wn=wn) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.convs(x) + self.proj(self.pool(x)))


class ShuffleUp(nn.Module):
    """fastai ``PixelShuffle_ICNR``: 1x1 conv (ICNR), ReLU, pixel shuffle x2, optional blur."""

    def __init__(self, cin: int, cout: int, blur: bool, wn: bool):
        super().__init__()
        conv = nn.Conv2d(cin, cout * 4, 1)
        icnr_(conv, 2)
        with torch.no_grad():
            assert conv.bias is not None  # Conv2d has a bias by default
            conv.bias.zero_()
        self.conv = _weight_norm(conv) if wn else conv
        self.blur = blur

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_shuffle(F.relu(self.conv(x)), 2)
        if self.blur:
            x = F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)
        return x


class UpBlock(nn.Module):
    """fastai ``UnetBlock``: upsample, concatenate the encoder feature, two 3x3 convs."""

    def __init__(self, up_in: int, skip_in: int, final: bool, blur: bool, attention: bool,
                 wn: bool):
        super().__init__()
        half = max(1, up_in // 2)
        self.up = ShuffleUp(up_in, half, blur, wn)
        ni = half + skip_in
        self.out_channels = max(1, ni // 2) if final else ni
        self.conv1 = Conv(ni, self.out_channels, wn=wn)
        self.conv2 = Conv(self.out_channels, self.out_channels, wn=wn, attention=attention)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.relu(torch.cat([self.up(x), skip], dim=1))
        return self.conv2(self.conv1(x))


@register("pssr-resunet")
class ResUNet(nn.Module):
    """PSSR's network: bilinear pre-upsample, then a ResNet-34 U-Net at output resolution.

    Parameters
    ----------
    scale : int
        Upsampling factor in y and x.
    in_slices : int
        Number of adjacent sections given as channels (odd; the centre one is restored).
    width : float
        Channel multiplier (1.0: ResNet-34 widths 64-512, about 41 M parameters). Small
        values (e.g. 0.125) give cheap versions with the same topology for tests.
    layers : sequence of int
        Basic blocks per encoder stage; ``(3, 4, 6, 3)`` is ResNet-34. Fewer blocks give a
        smaller receptive field.
    self_attention : bool
        Global self-attention in the decoder block at 1/8 resolution, as PSSR. It makes
        the receptive field the whole tile: the model then declares ``global_context``,
        its :meth:`receptive_field_proxy` gives the convolutional receptive field (used as
        the default halo), and blockwise output differs from whole-image output.
    blur : bool
        Blur after each pixel shuffle (fastai ``blur``/``blur_final``).
    weight_norm : bool
        Weight-normed convolutions (PSSR's ``NormType.Weight``).
    """

    def __init__(self, scale: int = 4, in_slices: int = 1, width: float = 1.0,
                 layers: Sequence[int] = (3, 4, 6, 3), self_attention: bool = False,
                 blur: bool = True, weight_norm: bool = True):
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise TypeError(f"layers must be 4 positive block counts, got {list(layers)}")
        self.scale, self.in_slices = scale, in_slices
        self.width, self.layers = width, tuple(int(n) for n in layers)
        self.self_attention, self.blur, self.weight_norm = self_attention, blur, weight_norm
        self.downsampling = STRIDE // math.gcd(STRIDE, scale)
        self.global_context = bool(self_attention)
        wn = weight_norm
        s1, s2, s3 = _ch(32, width), _ch(32, width), _ch(64, width)
        self.stem = nn.Sequential(Conv(in_slices, s1, stride=2, wn=wn), Conv(s1, s2, wn=wn),
                                  Conv(s2, s3, wn=wn))
        widths = [_ch(c, width) for c in (64, 128, 256, 512)]
        stages, cin = [], s3
        for i, (n, cout) in enumerate(zip(self.layers, widths)):
            blocks = [BasicBlock(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1,
                                 wn) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        mid = widths[-1]
        self.middle = nn.Sequential(Conv(mid, 2 * mid, wn=wn), Conv(2 * mid, mid, wn=wn))
        skips = [widths[2], widths[1], widths[0], s3]  # 1/16, 1/8, 1/4, 1/2
        ups, c = [], mid
        for i, skip in enumerate(skips):
            final = i == len(skips) - 1
            block = UpBlock(c, skip, final, blur, self_attention and i == len(skips) - 3, wn)
            ups.append(block)
            c = block.out_channels
        self.ups = nn.ModuleList(ups)
        self.last_up = ShuffleUp(c, c, blur, wn)
        c += in_slices  # "last cross": the upsampled input
        inner = max(1, c // 2)
        self.res = nn.Sequential(Conv(c, inner, wn=wn), Conv(inner, c, wn=wn, gain=0.1))
        self.head = nn.Conv2d(c, 1, 1)
        with torch.no_grad():  # start as bilinear upsampling of the centre section
            self.head.weight.normal_(0, 1e-3)
            self.head.weight[0, c - in_slices + in_slices // 2] = 1.0
            assert self.head.bias is not None  # Conv2d has a bias by default
            self.head.bias.zero_()

    def receptive_field_proxy(self) -> ResUNet:
        """The same topology with minimal widths, plain convolutions and no attention.

        :func:`pssr_volume.model.receptive_field` probes this instead of the network (the
        receptive field depends only on the topology; the probe is then cheap). For a
        model with self-attention it is the receptive field of the convolutional path.
        """
        return ResUNet(self.scale, self.in_slices, width=1 / 64, layers=self.layers,
                       self_attention=False, blur=self.blur, weight_norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        g = self.downsampling
        ph, pw = -h % g, -w % g
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        up = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        f = self.stem(up)  # 1/2
        feats = [f]
        f = self.pool(f)  # 1/4
        for stage in self.stages:
            f = stage(f)
            feats.append(f)  # 1/4, 1/8, 1/16, 1/32
        f = self.middle(f)
        for block, skip in zip(self.ups, (feats[3], feats[2], feats[1], feats[0])):
            f = block(f, skip)
        f = self.last_up(f)
        f = torch.cat([f, up], dim=1)
        f = self.head(f + self.res(f))
        if ph or pw:
            f = f[..., : self.scale * h, : self.scale * w]
        return f
