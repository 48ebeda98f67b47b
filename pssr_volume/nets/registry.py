"""The architecture registry: networks by name, and the layers they share.

A model file names its architecture (``ModelConfig.architecture``); :func:`build`
finds the class registered under that name and instantiates it. Every module of
:mod:`pssr_volume.nets` is imported on first use, so a new architecture is one new
file there that decorates its class with ``@register("name")``.

Every architecture maps ``(N, in_slices, H, W)`` float input (normalised
intensities) to ``(N, 1, scale*H, scale*W)`` and declares ``downsampling``:
the factor by which it is shift-equivariant. Blocks are placed on that grid.
A noise-aware model (``ModelConfig.noise_input``) gets ``extra_channels=1``: its
input has one more channel after the sections, the noise map.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

import torch
from torch import nn

from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
_DISCOVERED = False


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that makes an architecture available by name in model files."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        ARCHITECTURES[name] = cls
        return cls

    return wrap


def centre_slice(x: torch.Tensor, in_slices: int) -> torch.Tensor:
    """The centre section of an input whose first ``in_slices`` channels are sections
    (any after them are other inputs, e.g. the noise map)."""
    c = in_slices // 2
    return x[:, c : c + 1]



def architectures() -> dict[str, Callable[..., nn.Module]]:
    """All registered architectures, after importing every module of the package."""
    global _DISCOVERED
    if not _DISCOVERED:
        import pssr_volume.nets as package

        for mod in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{mod.name}")
        _DISCOVERED = True
    return ARCHITECTURES


def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def icnr_(conv: nn.Conv2d, factor: int) -> None:
    """Initialise a conv that feeds ``PixelShuffle(factor)`` so that, at start,
    the shuffle acts like nearest-neighbour upsampling (no checkerboard)."""
    cout, cin, kh, kw = conv.weight.shape
    sub = torch.empty(cout // factor**2, cin, kh, kw)
    nn.init.kaiming_normal_(sub, nonlinearity="relu")
    with torch.no_grad():
        conv.weight.copy_(sub.repeat_interleave(factor**2, dim=0))



def build(config: ModelConfig) -> nn.Module:
    """Instantiate the architecture a config names, with its arguments."""
    try:
        cls = architectures()[config.architecture]
    except KeyError:
        known = ", ".join(sorted(architectures()))
        raise PssrError(
            f"unknown architecture {config.architecture!r} (known: {known})"
        ) from None
    try:
        extra = {"extra_channels": 1} if config.noise_input else {}
        return cls(scale=config.scale, in_slices=config.in_slices, **extra, **config.arch_args)
    except TypeError as e:
        raise PssrError(f"bad arguments for architecture {config.architecture!r}: {e}") from None

