"""A model file's header: its configuration, read without its weights and without torch.

A model file is safetensors: the weights, and the :class:`~pssr_volume.config.ModelConfig`
as JSON in the header's metadata under ``"pssr_volume"``. Reading the header takes a
fraction of a second, so the command line checks a model file before the heavy imports.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError
from safetensors import SafetensorError, safe_open

from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError

METADATA_KEY = "pssr_volume"


def read_config(path: str | Path) -> ModelConfig:
    """Read a model file's configuration from its header, without loading weights."""
    path = Path(path)
    if not path.is_file():
        raise PssrError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
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
