"""The receptive field of a network, measured exactly by a gradient probe."""

from __future__ import annotations

import copy
import functools
import inspect
from typing import cast

import torch
from torch import nn

from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError
from pssr_volume.nets.registry import architectures, build


def receptive_field(module: nn.Module, in_slices: int, scale: int, grid: int) -> tuple[int, int]:
    """Measure the receptive-field radius of a network, in input pixels (y, x).

    The radius ``r`` is the smallest number such that the outputs over any
    grid-aligned input pixel range ``[a, b)`` depend only on the inputs in
    ``[a - r, b + r)``. It is measured exactly: a float64 copy of the network
    gets positive weights (``1 / fan_in``) and zero biases, so no path can
    cancel, and the support of the input gradient of a grid cell's outputs is
    the receptive field. ``nn.MaxPool2d`` modules are swapped for average
    pooling of the same window in the probe (same support; a max would route
    the gradient to one element only).

    An architecture may define ``receptive_field_proxy()``, returning a network of the
    same topology that is cheaper to probe (fewer channels, plain convolutions); it is
    probed instead. A network with global context (``global_context = True``, e.g.
    self-attention over the whole tile) has no finite receptive field: it must define
    the proxy, whose result is the receptive field of its convolutional path (the
    default halo; blockwise output then differs from whole-image output).
    """
    proxy = getattr(module, "receptive_field_proxy", None)
    if callable(proxy):
        module = proxy()
    elif getattr(module, "global_context", False):
        raise PssrError(f"{type(module).__name__} has global context but no "
                        "receptive_field_proxy(); its receptive field is unbounded")
    probe = copy.deepcopy(module).double().eval()
    for parent in list(probe.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride,
                                                   child.padding, ceil_mode=child.ceil_mode))
    with torch.no_grad():
        for m in probe.modules():
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() > 1:
                w.fill_(1.0 / w[0].numel())
                bias = getattr(m, "bias", None)
                if bias is not None:
                    bias.zero_()
    size = 8 * grid
    while size <= 8192:
        c0 = (size // 2 // grid) * grid
        x = torch.ones(1, in_slices, size, size, dtype=torch.float64, requires_grad=True)
        y = probe(x)
        y[..., c0 * scale : (c0 + grid) * scale, c0 * scale : (c0 + grid) * scale].sum().backward()
        assert x.grad is not None  # x requires grad and backward() just ran
        support = x.grad.abs().sum(dim=(0, 1)) > 0
        rows = torch.nonzero(support.any(dim=1)).flatten()
        cols = torch.nonzero(support.any(dim=0)).flatten()
        lo, hi = min(rows.min(), cols.min()), max(rows.max(), cols.max())
        if lo > 0 and hi < size - 1:
            ry = max(c0 - int(rows.min()), int(rows.max()) - (c0 + grid - 1))
            rx = max(c0 - int(cols.min()), int(cols.max()) - (c0 + grid - 1))
            return ry, rx
        size *= 2
    raise PssrError("receptive field larger than 8192 input pixels; is the model convolutional?")


PROBE_WIDTH = 4  # channels of the probe network: the receptive field does not depend on them


def probe_config(config: ModelConfig) -> ModelConfig:
    """The configuration a receptive field is measured on: the same topology (kernels,
    strides, depth) with :data:`PROBE_WIDTH` channels where the architecture takes a
    ``width`` that counts channels (an int). The probe runs in float64 with gradients: at
    full width the bundled model's took 6 s and 350 MB, at width 4 0.3 s and 70 MB, with
    the same radius (a test checks every architecture)."""
    cls = architectures()[config.architecture]
    width = inspect.signature(cls.__init__).parameters.get("width")
    if width is None or type(width.default) is not int:  # e.g. resunet's is a float multiplier
        return config
    return config.model_copy(update={"arch_args": {**config.arch_args, "width": PROBE_WIDTH}})


@functools.lru_cache(maxsize=32)
def receptive_field_of(config_json: str) -> tuple[int, int]:
    config = probe_config(ModelConfig.model_validate_json(config_json))
    module = build(config)
    grid = cast(int, module.downsampling)  # every registered network declares it (registry)
    ry, rx = receptive_field(module, config.in_channels, config.scale, grid)
    if config.noise_input:  # the noise map is made from 3x3 means of the section
        ry, rx = ry + 1, rx + 1
    return ry, rx

