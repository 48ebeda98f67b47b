"""Super-resolution networks, their receptive field, and the model-file format.

A model file is a single ``.safetensors`` file: the weights, plus the model's
:class:`~pssr_volume.config.ModelConfig` as JSON in the safetensors header
(key ``"pssr_volume"``). Loading never unpickles anything, so a model file
from a stranger cannot run code.

Every architecture maps ``(N, in_slices, H, W)`` float input (normalised
intensities) to ``(N, 1, scale*H, scale*W)`` and declares ``downsampling``:
the factor by which it is shift-equivariant. Blocks are placed on that grid.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError

METADATA_KEY = "pssr_volume"
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that makes an architecture available by name in model files."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        ARCHITECTURES[name] = cls
        return cls

    return wrap


def _centre_slice(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1] // 2
    return x[:, c : c + 1]


@register("pointwise")
class Pointwise(nn.Module):
    """Stand-in model without spatial context: each input pixel becomes a
    ``scale x scale`` patch of ``gain * x + bias``.

    Its receptive field is zero, so blockwise output must equal whole-image
    output exactly. Used by tests and for dry runs of the engine.
    """

    downsampling = 1

    def __init__(self, scale: int = 4, in_slices: int = 1, gain: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.scale, self.in_slices = scale, in_slices
        self.gain = nn.Parameter(torch.tensor(float(gain)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _centre_slice(x) * self.gain + self.bias
        return y.repeat_interleave(self.scale, dim=2).repeat_interleave(self.scale, dim=3)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _icnr_(conv: nn.Conv2d, factor: int) -> None:
    """Initialise a conv that feeds ``PixelShuffle(factor)`` so that, at start,
    the shuffle acts like nearest-neighbour upsampling (no checkerboard)."""
    cout, cin, kh, kw = conv.weight.shape
    sub = torch.empty(cout // factor**2, cin, kh, kw)
    nn.init.kaiming_normal_(sub, nonlinearity="relu")
    with torch.no_grad():
        conv.weight.copy_(sub.repeat_interleave(factor**2, dim=0))


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))``; no normalisation layers, whose per-tile
    statistics would make blockwise output depend on the block."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1, self.conv2 = _conv(width, width), _conv(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


@register("pssr-fast")
class FastUNet(nn.Module):
    """Fast PSSR network working at input resolution; upsamples inside.

    A residual U-Net on the low-resolution grid (``depth`` stride-2 levels,
    ``blocks`` residual blocks per level, widths ``width * 2**level``), a
    pixel-shuffle head to the output grid, and a global skip: the prediction
    is added to the bilinear upsample of the centre input section. With
    ``in_slices`` = 3 or 5, adjacent sections enter as channels (2.5D).

    Parameters
    ----------
    scale : int
        Upsampling factor in y and x.
    in_slices : int
        Number of adjacent sections given as channels (odd).
    width : int
        Channels at the first level.
    depth : int
        Number of stride-2 downsamplings; the network is shift-equivariant in
        steps of ``2**depth`` input pixels.
    blocks : int
        Residual blocks per level (encoder, bottleneck and decoder each).
    """

    def __init__(
        self, scale: int = 4, in_slices: int = 1, width: int = 48, depth: int = 2, blocks: int = 1
    ):
        super().__init__()
        self.scale, self.in_slices, self.downsampling = scale, in_slices, 2**depth
        widths = [width * 2**i for i in range(depth + 1)]
        self.head = _conv(in_slices, width)
        self.enc = nn.ModuleList(
            nn.Sequential(*[ResBlock(w) for _ in range(blocks)]) for w in widths[:-1]
        )
        self.down = nn.ModuleList(_conv(a, b, stride=2) for a, b in zip(widths, widths[1:]))
        self.mid = nn.Sequential(*[ResBlock(widths[-1]) for _ in range(blocks)])
        self.up = nn.ModuleList(_conv(b, 4 * a, k=1) for a, b in zip(widths, widths[1:]))
        self.dec = nn.ModuleList(
            nn.Sequential(*[ResBlock(w) for _ in range(blocks)]) for w in widths[:-1]
        )
        self.tail = _conv(width, scale**2)
        for conv in self.up:
            _icnr_(conv, 2)
        _icnr_(self.tail, scale)
        with torch.no_grad():
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(
            _centre_slice(x), scale_factor=self.scale, mode="bilinear", align_corners=False
        )
        h = self.head(x)
        skips = []
        for enc, down in zip(self.enc, self.down):
            h = enc(h)
            skips.append(h)
            h = F.relu(down(h))
        h = self.mid(h)
        for i in reversed(range(len(self.up))):
            h = F.pixel_shuffle(self.up[i](h), 2) + skips[i]
            h = self.dec[i](h)
        return F.pixel_shuffle(self.tail(h), self.scale) + base


def build(config: ModelConfig) -> nn.Module:
    """Instantiate the architecture a config names, with its arguments."""
    try:
        cls = ARCHITECTURES[config.architecture]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise PssrError(
            f"unknown architecture {config.architecture!r} (known: {known})"
        ) from None
    try:
        return cls(scale=config.scale, in_slices=config.in_slices, **config.arch_args)
    except TypeError as e:
        raise PssrError(f"bad arguments for architecture {config.architecture!r}: {e}") from None


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
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()
    size = 8 * grid
    while size <= 8192:
        c0 = (size // 2 // grid) * grid
        x = torch.ones(1, in_slices, size, size, dtype=torch.float64, requires_grad=True)
        y = probe(x)
        y[..., c0 * scale : (c0 + grid) * scale, c0 * scale : (c0 + grid) * scale].sum().backward()
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


@functools.lru_cache(maxsize=32)
def _receptive_field_of(config_json: str) -> tuple[int, int]:
    config = ModelConfig.model_validate_json(config_json)
    module = build(config)
    return receptive_field(module, config.in_slices, config.scale, module.downsampling)


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs to know about a model, without loading its weights.

    Attributes
    ----------
    path, sha256 : str
        The file and the SHA-256 of its bytes (the model's identity).
    config : ModelConfig
        The stored configuration.
    receptive_field : tuple of int
        Radius in input pixels (y, x), measured by :func:`receptive_field`.
    grid : int
        The network's total downsampling; block origins are multiples of it.
    global_context : bool
        The network also sees the whole tile (global self-attention): its true
        receptive field is unbounded, ``receptive_field`` is that of its
        convolutional path, and blockwise output differs from whole-image output.
    """

    path: str
    sha256: str
    config: ModelConfig
    receptive_field: tuple[int, int]
    grid: int
    global_context: bool = False

    @property
    def default_halo(self) -> tuple[int, int]:
        """Input halo (y, x): the receptive field rounded up to the grid."""
        return tuple(math.ceil(r / self.grid) * self.grid for r in self.receptive_field)

    @property
    def z_halo(self) -> int:
        """Sections of context needed on each side in z (2.5D models)."""
        return self.config.in_slices // 2


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_config(path: str | Path) -> ModelConfig:
    """Read a model file's configuration from its header, without loading weights."""
    path = Path(path)
    if not path.is_file():
        raise PssrError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise PssrError(f"{path} is not a pssr-volume model file (not safetensors: {e})") from None
    if METADATA_KEY not in meta:
        raise PssrError(f"{path} is a safetensors file without pssr-volume model metadata")
    try:
        return ModelConfig.model_validate_json(meta[METADATA_KEY])
    except ValidationError as e:
        first = e.errors()[0]
        raise PssrError(
            f"{path} has invalid model metadata: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None


def model_info(path: str | Path) -> ModelInfo:
    """Inspect a model file: identity, configuration, receptive field and grid."""
    config = read_config(path)
    module = build(config)
    return ModelInfo(
        path=str(Path(path).resolve()),
        sha256=file_sha256(path),
        config=config,
        receptive_field=_receptive_field_of(config.model_dump_json()),
        grid=module.downsampling,
        global_context=bool(getattr(module, "global_context", False)),
    )


def load_model(path: str | Path, device: str = "cpu") -> tuple[ModelConfig, nn.Module]:
    """Load a model file into an eval-mode module on ``device``.

    Raises
    ------
    PssrError
        If the file is missing, not a model file, names an unknown
        architecture, or its weights do not fit the architecture.
    """
    config = read_config(path)
    module = build(config)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iter
        module.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as e:
        msg = str(e).strip().splitlines()[0]
        raise PssrError(f"{path}: weights do not match architecture: {msg}") from None
    return config, module.to(device).eval()


def save_model(path: str | Path, module: nn.Module, config: ModelConfig) -> Path:
    """Write ``module``'s weights and ``config`` to a single safetensors file."""
    path = Path(path)
    build(config)  # the config must describe a buildable architecture
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in module.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={METADATA_KEY: config.model_dump_json()})
    return path


def describe(info: ModelInfo) -> dict[str, Any]:
    """A JSON-friendly summary of a model (for ``info`` and provenance)."""
    c = info.config
    return {
        "name": c.name,
        "architecture": c.architecture,
        "arch_args": c.arch_args,
        "scale": c.scale,
        "in_slices": c.in_slices,
        "normalization": json.loads(c.normalization.model_dump_json()),
        "sha256": info.sha256,
        "receptive_field": list(info.receptive_field),
        "default_halo": list(info.default_halo),
        "grid": info.grid,
        "global_context": info.global_context,
    }


from pssr_volume import resunet as _resunet  # noqa: E402, F401  (registers pssr-resunet)
