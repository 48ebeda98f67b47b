"""What ``pssr-volume info PATH`` prints: the bundled models, a model file or name, or a volume
(an input of any format, or a pssr-volume output), as a short summary or, with ``--json``, the
full record (:mod:`pssr_volume.io.info` gathers and formats a volume's)."""

from __future__ import annotations

import json
from pathlib import Path

from pssr_volume.bundled import BUNDLED, bundled_rows, describe_row, resolve_model
from pssr_volume.errors import PssrError
from pssr_volume.io.info import format_info, format_model, volume_info
from pssr_volume.io.inputs import input_location
from pssr_volume.io.precomputed import is_precomputed
from pssr_volume.io.precomputed import volume_info as precomputed_info
from pssr_volume.model_header import read_config


def info_lines(path: Path | str | None, list_models: bool = False,
               as_json: bool = False) -> list[str]:
    """The lines ``info`` prints for ``path`` (``None`` or ``list_models``: the bundled
    models)."""
    if path is None or list_models:
        rows = bundled_rows()
        return [json.dumps(rows, indent=2)] if as_json else list(map(describe_row, rows))
    if isinstance(path, Path) and (path.suffix == ".safetensors"
                                   or (str(path) in BUNDLED and not path.exists())):
        model = resolve_model(path)
        read_config(model)  # a damaged header fails before torch loads
        from pssr_volume.model import describe, model_info

        desc = describe(model_info(model), full=True)
        return [json.dumps(desc, indent=2)] if as_json else format_model(desc, str(model))
    location = input_location(path)
    if isinstance(location, Path) and not location.exists():
        raise PssrError(f"not found: {path}")
    # a neuroglancer precomputed volume (an output of ours), else any input
    details = precomputed_info(location) if is_precomputed(location) else volume_info(path)
    return [json.dumps(details, indent=2)] if as_json else format_info(details)
