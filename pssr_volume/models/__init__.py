"""Model files shipped with the package, by name.

``--model`` takes a model file or one of these names; :func:`resolve_model` tells which.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

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
