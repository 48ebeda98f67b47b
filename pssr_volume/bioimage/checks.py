"""What ``export-model`` checks before any work (and before torch loads): the output path and
the model's header. Each failure is one line (:class:`~pssr_volume.errors.PssrError`)."""

from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from pathlib import Path

from pssr_volume.bioimage.config import ExportModelConfig
from pssr_volume.bundled import resolve_model
from pssr_volume.errors import PssrError
from pssr_volume.model_header import read_config


def is_package(path: Path) -> bool:
    """Whether ``path`` is a zip with a bioimage.io description at its top."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n in ("rdf.yaml", "bioimageio.yaml") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def check_output(config: ExportModelConfig) -> Path:
    """Refuse an OUTPUT that cannot or must not be written: a folder, an existing file
    without ``--overwrite`` (with it, anything but a bioimage.io package), a missing or
    read-only folder."""
    out = config.output
    if out.is_dir():
        raise PssrError(f"output is a folder: {out} (give the .zip file to write)")
    if out.exists() or out.is_symlink():
        if not config.overwrite:
            raise PssrError(f"output exists: {out} (use --overwrite to replace it)")
        if not out.is_file() or not is_package(out):
            raise PssrError(f"refusing to overwrite {out}: it is not a bioimage.io package")
    parent = out.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise PssrError(f"cannot write {out}: {parent} {what}")
    try:  # a real write: permissions, a read-only or pseudo file system, a full quota
        with tempfile.TemporaryFile(dir=parent, prefix=f".{out.name}."):
            pass
    except OSError as e:
        raise PssrError(f"cannot write {out}: folder {parent} is not writable "
                        f"({e.strerror or type(e).__name__})") from None
    return out


def check_export(config: ExportModelConfig) -> tuple[Path, Path]:
    """The output and the model file, both checked (the model's header is read)."""
    if importlib.util.find_spec("bioimageio.spec") is None:
        raise PssrError("export-model needs the bioimageio.spec package: "
                        "pip install 'pssr-volume[bioimage]'")
    out = check_output(config)
    if not config.model.strip():
        raise PssrError("MODEL is empty: give a bundled model's name or a model file")
    path = resolve_model(config.model)
    if path.resolve() == out.resolve():
        raise PssrError(f"the output is the model file: {path}")
    read_config(path)
    return out, path
