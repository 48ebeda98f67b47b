"""What ``pssr-volume export-model`` takes: a pydantic model, light to import (no torch)."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from pssr_volume.config import LocalPath, Strict


class ExportModelConfig(Strict):
    """Everything ``pssr-volume export-model MODEL OUTPUT`` needs.

    Attributes
    ----------
    model : str
        A bundled model's name or a model file (``.safetensors``).
    output : Path
        The bioimage.io package to write, a ``.zip`` file.
    overwrite : bool
        Replace an existing bioimage.io package at ``output`` (anything else is refused).
    onnx : bool
        Also export ONNX weights (needs the ``onnx`` and ``onnxscript`` packages).
    """

    model: str
    output: LocalPath
    overwrite: bool = False
    onnx: bool = True

    @field_validator("output")
    @classmethod
    def _zip(cls, v: Path) -> Path:
        if v.suffix.lower() != ".zip":
            raise ValueError(f"{v}: a bioimage.io package is a .zip file (name it OUT.zip)")
        return v
