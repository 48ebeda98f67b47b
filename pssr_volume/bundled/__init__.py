"""Model files shipped with the package, by name.

``--model`` takes a model file or one of these names; :func:`resolve_model` tells which.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from pssr_volume.errors import PssrError

DEFAULT_MODEL = "pssr-em-x4"
BUNDLED: dict[str, str] = {
    "pssr-em-x4": "2-D: serial sections and single images",
    "pssr-em-x4-iso": "3 adjacent sections in: isotropic FIB-SEM and SBEM",
}
"""The bundled models' names and what each is for."""


def bundled_model_path(name: str = DEFAULT_MODEL) -> Path:
    """Where the bundled model ``name`` lives in the package (the file may be missing from
    an installation that left it out: see :func:`bundled_models`)."""
    return Path(str(files(__name__).joinpath(f"{name}.safetensors")))


def bundled_models() -> dict[str, Path]:
    """The bundled models present in this installation, by name."""
    return {n: p for n in BUNDLED if (p := bundled_model_path(n)).is_file()}


def resolve_model(value: str | Path | None) -> Path:
    """The model file ``--model`` means: an existing file, else a bundled model's name;
    ``None`` is the default bundled model.

    Raises
    ------
    PssrError
        If ``value`` is neither a file nor a bundled model of this installation.
    """
    if value is None:
        value = DEFAULT_MODEL
    path = Path(value)
    if path.is_file():
        return path
    if str(value) in BUNDLED:
        bundled = bundled_model_path(str(value))
        if bundled.is_file():
            return bundled
        raise PssrError(f"the bundled model {value!r} is missing from this installation; "
                        "pass a model file with --model")
    known = ", ".join(bundled_models()) or "none installed"
    raise PssrError(f"model not found: {value} (neither a file nor a bundled model; "
                    f"bundled: {known})")


FACTS_FILE = "facts.json"
"""What planning needs of each bundled model's network, measured on it and recorded beside it
by SHA-256 of the file: receptive field, grid, global context and GFLOP per output Mpx.
Planning a bundled model then builds, loads and probes nothing, and needs no torch (a dry run
on a login node). tests/test_plan_anywhere.py measures every entry again and says how to
rewrite the file when the models or the networks change."""


@functools.cache
def _facts() -> dict[str, dict[str, Any]]:
    path = files(__name__).joinpath(FACTS_FILE)
    return json.loads(path.read_text()) if path.is_file() else {}


def recorded_facts(sha256: str) -> dict[str, Any] | None:
    """The recorded facts of the model file whose SHA-256 is ``sha256`` (None: not a
    bundled model's file, or not recorded)."""
    return _facts().get(sha256)


def bundled_rows() -> list[dict[str, Any]]:
    """What ``pssr-volume info --models`` shows of each bundled model (headers only)."""
    from pssr_volume.model_header import read_config

    rows = []
    for name, purpose in BUNDLED.items():
        p = bundled_model_path(name)
        row: dict[str, Any] = {"name": name, "default": name == DEFAULT_MODEL,
                               "purpose": purpose, "installed": p.is_file()}
        if p.is_file():
            c = read_config(p)
            row.update(file=str(p), megabytes=round(p.stat().st_size / 1e6, 1),
                       architecture=c.architecture, scale=c.scale, in_slices=c.in_slices,
                       noise_input=c.noise_input, trained_pixel_size_nm=c.pixel_size_nm)
        rows.append(row)
    return rows


def describe_row(r: dict[str, Any]) -> str:
    """One line of :func:`bundled_rows`."""
    head = f"{r['name']}{' (default)' if r['default'] else ''}: {r['purpose']}"
    if not r["installed"]:
        return f"{head}; not installed"
    px = r["trained_pixel_size_nm"]
    return (f"{head}; {r['architecture']} x{r['scale']}, {r['in_slices']} section(s) in"
            f"{', noise-aware' if r['noise_input'] else ''}"
            f"{f', trained at {px[0]:g}-{px[1]:g} nm pixels' if px else ''}, "
            f"{r['megabytes']} MB")
