"""Fine-tuning: ``train --init MODEL`` starts from an existing model's weights.

The model (a bundled model's name or a file) fixes the network: its architecture, arguments,
scale, input sections and noise input are adopted; flags given on the command line that
disagree with them are refused in one line. One change is allowed: a deeper ``pssr-fast``
(``--arch-arg blocks=N``, more residual blocks per level than the model has). Its first
blocks take the model's weights and the new ones start as the identity (their last
convolution zero), so training starts from exactly the model's output.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pssr_volume.bundled import resolve_model
from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError
from pssr_volume.model import check_model, load_model
from pssr_volume.nets.fast import ResBlock
from pssr_volume.nets.registry import architectures
from pssr_volume.train_config import TrainConfig

_ADOPTED = ("architecture", "arch_args", "scale", "in_slices", "noise_input")


def initial_model(value: str | Path) -> tuple[ModelConfig, nn.Module]:
    """Load the model ``--init`` names; a missing, corrupt or non-finite one is refused."""
    path = resolve_model(value)
    check_model(path)
    return load_model(path)


def _with_defaults(architecture: str, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` completed with the architecture's own defaults (``width=48`` given or left
    out is the same network)."""
    cls = architectures().get(architecture)
    if cls is None:
        return args
    fixed = ("scale", "in_slices", "extra_channels")  # set from the model config, not args
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()
                if p.default is not inspect.Parameter.empty and k not in fixed}
    return {**defaults, **args}


def _deepens(mine: dict[str, Any], theirs: dict[str, Any], architecture: str) -> bool:
    """Whether ``mine`` is ``theirs`` with more residual blocks per level (pssr-fast; both
    completed with the defaults)."""
    if architecture != "pssr-fast":
        return False
    rest = {k: v for k, v in mine.items() if k != "blocks"}
    if rest != {k: v for k, v in theirs.items() if k != "blocks"}:
        return False
    more, fewer = mine["blocks"], theirs["blocks"]
    return isinstance(more, int) and isinstance(fewer, int) and more > fewer


def adopt(cfg: TrainConfig, model: ModelConfig) -> TrainConfig:
    """``cfg`` with the network settings of ``model``; refused if the command line set one
    of them to something else (except a deeper pssr-fast, see the module docstring)."""
    adopted = {f: getattr(model, f) for f in _ADOPTED}
    for field in _ADOPTED:
        mine, theirs = getattr(cfg, field), getattr(model, field)
        if field not in cfg.model_fields_set or mine == theirs:
            continue
        if field == "arch_args":
            full_mine = _with_defaults(model.architecture, mine)
            full_theirs = _with_defaults(model.architecture, theirs)
            if full_mine == full_theirs:
                continue  # the same network, spelled with or without its defaults
            if _deepens(full_mine, full_theirs, model.architecture):
                adopted[field] = mine
                continue
        flag = "--" + field.replace("_", "-")
        raise PssrError(f"--init model {model.name!r} has {field} {theirs!r}, but {flag} "
                        f"asks for {mine!r}; leave it out to fine-tune")
    # validated again: e.g. a noise-aware model needs tiles large enough for the estimate
    return TrainConfig(**{**cfg.model_dump(), **adopted})


def load_initial_weights(module: nn.Module, init: nn.Module) -> None:
    """Copy ``init``'s weights into ``module``; residual blocks ``init`` lacks become the
    identity. Anything else that does not match is refused."""
    src, dst = init.state_dict(), module.state_dict()
    odd = [k for k, v in src.items() if k not in dst or dst[k].shape != v.shape]
    new = {k for k in dst if k not in src}
    for name, block in module.named_modules():
        if not isinstance(block, ResBlock):
            continue
        keys = {f"{name}.{k}" for k in block.state_dict()}
        if keys <= new:
            with torch.no_grad():
                block.conv2.weight.zero_()
                if block.conv2.bias is not None:
                    block.conv2.bias.zero_()
            new -= keys
    if odd or new:
        raise PssrError(f"the --init model's weights do not fit the network: "
                        f"{sorted(odd or new)[0]}")
    module.load_state_dict(src, strict=False)
