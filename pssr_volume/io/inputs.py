"""Lazy, read-only input volumes: which reader opens which path.

:func:`open_input` inspects a path (headers and metadata only) and returns a small,
picklable :class:`InputVolume`; pixel data are read on demand with
:meth:`InputVolume.read`. Nothing is ever written next to the input.

================================  =========================================  ==============
input                             example                                    module
================================  =========================================  ==============
TIFF, multi-page, ImageJ, OME     ``stack.tif``, ``cells.ome.tif``           :mod:`.tiff`
folder of TIFF slices             ``raw/`` (natural order: 2 before 10)      :mod:`.tiff`
Zarr v2/v3 array, OME-Zarr        ``a.zarr``, ``img.ome.zarr``, ``.../2``    :mod:`.zarr_input`
HDF5 dataset                      ``sample_A.hdf:/volumes/raw``              :mod:`.hdf5`
MRC                               ``tomo.mrc``, ``stack.st``, ``vol.rec``    :mod:`.mrc`
N5 dataset or multiscale group    ``export.n5/setup0/timepoint0/s0``         :mod:`.n5`
================================  =========================================  ==============
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pssr_volume.errors import PssrError
from pssr_volume.io.common import error, why
from pssr_volume.io.tiff import TIFF_SUFFIXES
from pssr_volume.io.volume import InputVolume, clear_handle_cache

__all__ = ["InputVolume", "clear_handle_cache", "input_location", "open_input", "split_dataset"]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
MRC_SUFFIXES = (".mrc", ".mrcs", ".rec", ".st", ".ali", ".map")
COMPRESSED_SUFFIXES = tuple(s + c for s in (".mrc", ".map", ".rec") for c in (".gz", ".bz2"))
_SPLIT = re.compile(r"^(.+?\.(?:h5|hdf5|hdf|he5)):(.*)$", re.IGNORECASE)


SUPPORTED = (
    "a .tif/.tiff file, a folder of TIFF slices, a zarr array, an OME-Zarr image, an N5 "
    "dataset, an HDF5 dataset (file.h5:/path/to/dataset) or an MRC file (.mrc, .rec, .st, .map)"
)


def split_dataset(text: str) -> tuple[str, str | None]:
    """Split ``file.h5:/path/to/dataset`` into the file and the dataset path.

    Anything else is returned unchanged, with None for the dataset.
    """
    match = _SPLIT.match(text)
    if match is None:
        return text, None
    return match.group(1), "/" + match.group(2).strip("/")


def input_location(path: str | os.PathLike[str]) -> Path:
    """The file or folder an input path names (``file.h5:/raw`` -> ``file.h5``)."""
    text = os.fspath(path)
    if os.path.exists(text):
        return Path(text)
    return Path(split_dataset(text)[0])


def open_input(path: str | os.PathLike[str]) -> InputVolume:
    """Open any supported input volume (see the module docstring), lazily and read-only.

    Only headers and metadata are read; every TIFF slice of a folder is checked.

    Parameters
    ----------
    path : str or os.PathLike
        The input to open; an HDF5 dataset is named ``file.h5:/path/to/dataset``.

    Returns
    -------
    InputVolume
        The lazily readable volume.

    Raises
    ------
    PssrError
        For a missing, unreadable, corrupt or unsupported input (one-line message).
    """
    text = os.path.expanduser(os.fspath(path))
    dataset = None
    if not os.path.exists(text):
        text, dataset = split_dataset(text)
    p = os.path.abspath(text)
    try:
        is_dir = os.path.isdir(p)
        os.stat(p)
    except FileNotFoundError:
        raise error(f"input not found: {p}") from None
    except PermissionError:
        raise error(f"Input {p} cannot be accessed: permission denied.") from None
    except OSError as exc:
        raise error(f"Input {p} cannot be accessed: {why(exc)}") from exc
    if not os.access(p, os.R_OK | (os.X_OK if is_dir else 0)):
        raise error(f"Input {p} is not readable: permission denied.")
    try:
        return _open_dir(p) if is_dir else _open_file(p, dataset)
    except PssrError:
        raise
    except PermissionError as exc:
        raise error(f"Permission denied while reading {exc.filename or p}.") from exc
    except Exception as exc:
        raise error(f"Could not open {p}: {why(exc)}") from exc


def _open_file(path: str, dataset: str | None) -> InputVolume:
    lower = path.lower()
    if lower.endswith(HDF5_SUFFIXES):
        from pssr_volume.io.hdf5 import open_hdf5

        return open_hdf5(path, dataset)
    if lower.endswith(TIFF_SUFFIXES):
        from pssr_volume.io.tiff import open_tiff

        return open_tiff(path)
    if lower.endswith(MRC_SUFFIXES):
        from pssr_volume.io.mrc import open_mrc

        return open_mrc(path)
    if lower.endswith(COMPRESSED_SUFFIXES):
        raise error(
            f"Input {path} is a compressed MRC file, which cannot be read lazily; "
            "decompress it first (gunzip or bunzip2)."
        )
    suffix = os.path.splitext(path)[1] or "no extension"
    raise error(f"Input {path} has an unsupported format ({suffix}); expected {SUPPORTED}.")


def _open_dir(path: str) -> InputVolume:
    from pssr_volume.io.zarr_input import is_zarr

    if is_zarr(path):
        from pssr_volume.io.zarr_input import open_zarr

        return open_zarr(path)
    from pssr_volume.io.n5 import is_n5

    if is_n5(path):
        from pssr_volume.io.n5 import open_n5

        return open_n5(path)
    from pssr_volume.io.tiff import open_tiff_folder

    return open_tiff_folder(path)
