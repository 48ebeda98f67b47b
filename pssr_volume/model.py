"""The model-file format: one safetensors file, weights plus configuration.

A model file is a single ``.safetensors`` file: the weights, plus the model's
:class:`~pssr_volume.config.ModelConfig` as JSON in the safetensors header
(key ``"pssr_volume"``). Loading never unpickles anything, so a model file
from a stranger cannot run code.

The networks themselves live in :mod:`pssr_volume.nets`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pssr_volume.bundled import recorded_facts
from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError
from pssr_volume.model_header import METADATA_KEY, read_config

if TYPE_CHECKING:  # torch loads on first use: planning a bundled model needs none of it
    from torch import nn


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
        Radius in input pixels (y, x), measured by
        :func:`pssr_volume.nets.receptive_field.receptive_field`.
    grid : int
        The network's total downsampling; block origins are multiples of it.
    global_context : bool
        The network also sees the whole tile (global self-attention): its true
        receptive field is unbounded, ``receptive_field`` is that of its
        convolutional path, and blockwise output differs from whole-image output.
    gflop_per_out_mpx : float or None
        The network's cost (:func:`network_cost`), where already known.
    recorded : bool
        These facts come from the bundled models' record for this exact file
        (:func:`pssr_volume.bundled.recorded_facts`), measured and checked
        (:func:`check_model`) when it was made: nothing was built or loaded here.
    """

    path: str
    sha256: str
    config: ModelConfig
    receptive_field: tuple[int, int]
    grid: int
    global_context: bool = False
    gflop_per_out_mpx: float | None = None
    recorded: bool = False

    @property
    def default_halo(self) -> tuple[int, int]:
        """Input halo (y, x): the receptive field rounded up to the grid."""
        ry, rx = (math.ceil(r / self.grid) * self.grid for r in self.receptive_field)
        return (ry, rx)

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


MAX_PARAMETERS = 500_000_000  # 2 GB of float32 weights: far beyond any SR network here


def check_size(config: ModelConfig) -> None:
    """Refuse a configuration whose network would be absurdly large, before allocating it:
    the network is built on torch's ``meta`` device (shapes only, no memory)."""
    import torch

    from pssr_volume.nets.registry import build

    with torch.device("meta"):
        try:
            module = build(config)
        except (RuntimeError, ValueError, OverflowError, MemoryError) as e:
            raise PssrError(f"model {config.name!r}: its network cannot be built "
                            f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    n = sum(p.numel() for p in module.parameters())
    if n > MAX_PARAMETERS:
        raise PssrError(f"model {config.name!r} would have {n:,} parameters (at most "
                        f"{MAX_PARAMETERS:,}); its header is damaged or not meant for this tool")


def check_model(path: str | Path) -> None:
    """Load a model file's weights and run it once on a tiny input, here and now: weights
    that do not fit the architecture, or a network that gives non-finite values (NaN
    weights), are refused before any output is touched or any worker started."""
    import torch

    config, module = load_model(path)
    grid = cast(int, module.downsampling)
    with torch.inference_mode():
        y = module(torch.full((1, config.in_channels, 2 * grid, 2 * grid), 0.5))
    if not bool(torch.isfinite(y).all()):
        raise PssrError(f"{path}: the model gives non-finite values (NaN or Inf) on a plain "
                        "input; its weights are damaged")


def model_info(path: str | Path) -> ModelInfo:
    """Inspect a model file: identity, configuration, receptive field and grid (a bundled
    model's from their record, without torch; any other's measured on its network)."""
    config = read_config(path)
    sha = file_sha256(path)
    facts = recorded_facts(sha)
    if facts is not None:
        return ModelInfo(path=str(Path(path).resolve()), sha256=sha, config=config,
                         receptive_field=(facts["receptive_field"][0],
                                          facts["receptive_field"][1]),
                         grid=facts["grid"], global_context=facts["global_context"],
                         gflop_per_out_mpx=facts["gflop_per_out_mpx"], recorded=True)
    from pssr_volume.nets.receptive_field import receptive_field_of
    from pssr_volume.nets.registry import build

    check_size(config)
    module = build(config)
    return ModelInfo(
        path=str(Path(path).resolve()),
        sha256=sha,
        config=config,
        receptive_field=receptive_field_of(config.model_dump_json()),
        grid=cast(int, module.downsampling),  # every registered network declares it
        global_context=bool(getattr(module, "global_context", False)),
    )


def network_cost(info: ModelInfo) -> float:
    """The network's GFLOP per output megapixel: recorded, else counted on the network
    (:func:`pssr_volume.nets.cost.gflop_per_out_mpx`)."""
    if info.gflop_per_out_mpx is not None:
        return info.gflop_per_out_mpx
    return _counted_cost(info.config.model_dump_json())


@functools.lru_cache(maxsize=32)
def _counted_cost(config_json: str) -> float:
    from pssr_volume.nets.cost import gflop_per_out_mpx
    from pssr_volume.nets.registry import build

    cfg = ModelConfig.model_validate_json(config_json)
    return gflop_per_out_mpx(build(cfg).eval(), cfg.in_channels, cfg.scale)


def measured_facts(path: str | Path) -> dict[str, Any]:
    """What :func:`pssr_volume.bundled.recorded_facts` records of a model file, measured
    now on its network (after :func:`check_model`): the record's entry for it."""
    from pssr_volume.nets.receptive_field import receptive_field_of
    from pssr_volume.nets.registry import build

    check_model(path)
    config = read_config(path)
    check_size(config)
    module = build(config)
    return {"receptive_field": list(receptive_field_of(config.model_dump_json())),
            "grid": cast(int, module.downsampling),
            "global_context": bool(getattr(module, "global_context", False)),
            "gflop_per_out_mpx": _counted_cost(config.model_dump_json())}


def load_model(path: str | Path, device: str = "cpu") -> tuple[ModelConfig, nn.Module]:
    """Load a model file into an eval-mode module on ``device``.

    Raises
    ------
    PssrError
        If the file is missing, not a model file, names an unknown
        architecture, or its weights do not fit the architecture.
    """
    from safetensors import SafetensorError, safe_open

    from pssr_volume.nets.registry import build

    config = read_config(path)
    check_size(config)
    module = build(config)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iter
        module.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PssrError(f"{path}: weights do not match architecture: {msg}") from None
    return config, module.to(device).eval()


def save_model(path: str | Path, module: nn.Module, config: ModelConfig) -> Path:
    """Write ``module``'s weights and ``config`` to a single safetensors file."""
    import torch
    from safetensors.torch import save_file

    from pssr_volume.nets.registry import build

    path = Path(path)
    build(config)  # the config must describe a buildable architecture
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in module.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={METADATA_KEY: config.model_dump_json()})
    return path


def describe(info: ModelInfo, full: bool = False) -> dict[str, Any]:
    """A JSON-friendly summary of a model (provenance); ``full`` adds its description,
    training settings and metrics (``pssr-volume info MODEL``)."""
    c = info.config
    extra = ({"description": c.description, "training": c.training, "metrics": c.metrics}
             if full else {})
    return {
        "name": c.name,
        "architecture": c.architecture,
        "arch_args": c.arch_args,
        "scale": c.scale,
        "in_slices": c.in_slices,
        "noise_input": c.noise_input,
        "bf16_inference": c.bf16_inference,
        "trained_pixel_size_nm": None if c.pixel_size_nm is None else list(c.pixel_size_nm),
        "normalization": json.loads(c.normalization.model_dump_json()),
        "sha256": info.sha256,
        "receptive_field": list(info.receptive_field),
        "default_halo": list(info.default_halo),
        "grid": info.grid,
        "global_context": info.global_context,
        **extra,
    }


