"""Model files shipped with the package."""

from importlib.resources import files
from pathlib import Path

BUNDLED_MODEL = "pssr-em-x4.safetensors"


def bundled_model_path() -> Path:
    """Path of the pretrained EM model (x4) shipped in the package."""
    return Path(str(files(__name__).joinpath(BUNDLED_MODEL)))
