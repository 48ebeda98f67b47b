"""Fine-tuning: ``train --init MODEL`` starts from an existing model's weights.

The model (a bundled model's name or a file) fixes the network: its architecture, arguments,
scale, input sections and noise input are adopted; flags given on the command line that
disagree with them are refused in one line.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from pssr_volume.config import ModelConfig, TrainConfig
from pssr_volume.errors import PssrError
from pssr_volume.model import check_model, load_model
from pssr_volume.models import resolve_model

_ADOPTED = ("architecture", "arch_args", "scale", "in_slices", "noise_input")


def initial_model(value: str | Path) -> tuple[ModelConfig, nn.Module]:
    """Load the model ``--init`` names; a missing, corrupt or non-finite one is refused."""
    path = resolve_model(value)
    check_model(path)
    return load_model(path)


def adopt(cfg: TrainConfig, model: ModelConfig) -> TrainConfig:
    """``cfg`` with the network settings of ``model``; refused if the command line set one
    of them to something else."""
    for field in _ADOPTED:
        mine, theirs = getattr(cfg, field), getattr(model, field)
        if field in cfg.model_fields_set and mine != theirs:
            flag = "--" + field.replace("_", "-")
            raise PssrError(f"--init model {model.name!r} has {field} {theirs!r}, but {flag} "
                            f"asks for {mine!r}; leave it out to fine-tune")
    # validated again: e.g. a noise-aware model needs tiles large enough for the estimate
    return TrainConfig(**{**cfg.model_dump(), **{f: getattr(model, f) for f in _ADOPTED}})
