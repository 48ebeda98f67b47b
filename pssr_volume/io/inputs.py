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
bioformats2raw root               ``x.zarr`` (opens its image ``x.zarr/0``)  :mod:`.zarr_input`
HDF5 dataset                      ``sample_A.hdf:/volumes/raw``              :mod:`.hdf5`
MRC                               ``tomo.mrc``, ``stack.st``, ``vol.rec``    :mod:`.mrc`
N5 dataset or multiscale group    ``export.n5/setup0/timepoint0/s0``         :mod:`.n5`
================================  =========================================  ==============

Zarr, OME-Zarr (a level too, and bioformats2raw roots) and N5 also open at an ``s3://``,
``gs://`` or ``http(s)://`` URL (:mod:`pssr_volume.urls`); the other formats are local only.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from pssr_volume.errors import PssrError
from pssr_volume.io import stores
from pssr_volume.io.common import error, why
from pssr_volume.io.tiff import TIFF_SUFFIXES
from pssr_volume.io.volume import InputVolume, clear_handle_cache

__all__ = [
    "InputVolume", "clear_handle_cache", "input_location", "open_input", "refuse_special",
    "split_dataset",
]

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


def input_location(path: str | os.PathLike[str]) -> stores.Location:
    """The file or folder an input path names (``file.h5:/raw`` -> ``file.h5``); a URL
    names itself."""
    if stores.is_url(path):
        return str(path).rstrip("/")
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
    return _not_empty(_open(path))


def _not_empty(vol: InputVolume) -> InputVolume:
    """Refuse a volume with an axis of length 0: nothing to read, restore or convert."""
    if 0 in vol.shape:
        shape = "x".join(map(str, vol.shape))
        raise error(f"Input {vol.path} is empty: its shape is {shape} (z, y, x), an axis of "
                    "length 0; there is nothing to read.")
    return vol


def _open(path: str | os.PathLike[str]) -> InputVolume:
    if stores.is_url(path):
        return _open_url(str(path))
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
    refuse_special(p, "Input")
    if not os.access(p, os.R_OK | (os.X_OK if is_dir else 0)):
        raise error(f"Input {p} is not readable: permission denied.")
    try:
        if is_dir:
            _refuse_special_inside(p)
        return _open_dir(p) if is_dir else _open_file(p, dataset)
    except PssrError:
        raise
    except PermissionError as exc:
        raise error(f"Permission denied while reading {exc.filename or p}.") from exc
    except Exception as exc:
        raise error(f"Could not open {p}: {why(exc)}") from exc


def _open_url(text: str) -> InputVolume:
    """A Zarr, OME-Zarr or N5 input at an object-storage or HTTP URL."""
    from pssr_volume.io.n5 import is_n5, open_n5
    from pssr_volume.io.zarr_input import is_zarr, open_zarr
    from pssr_volume.urls import check_url

    try:
        url = str(check_url(text))
    except ValueError as e:
        raise error(str(e)) from None
    try:
        with stores.remote_errors(url, "input not found"):
            # one request first (S3, GCS): a missing input or an unreachable store is then
            # one line at once; HTTP has no folders to ask for, only the files below
            found = url.startswith(("http://", "https://")) or stores.exists(url)
            if not found:
                raise error(f"input not found: {url}")
            if url.startswith(("http://", "https://")):  # what it answers must be metadata
                _metadata_is_json(url)
            if is_zarr(url):
                return open_zarr(url)
            if is_n5(url):
                return open_n5(url)
            found = stores.exists(url)
    except PssrError:
        raise
    except Exception as exc:
        raise error(f"Could not open {url}: {why(exc)}") from exc
    if not found:
        raise error(f"input not found: {url}")
    raise error(f"Input {url} is no Zarr array, OME-Zarr image or N5 dataset (no zarr.json, "
                ".zarray, .zgroup or attributes.json there); at a URL only these are read.")


def _metadata_is_json(url: str) -> None:
    """Refuse a web server that answers the metadata files of Zarr and N5 with something
    else (a web page for every path); a status of 400 or more is "not there"."""
    import json

    import aiohttp

    from pssr_volume.io.filesystems import filesystem

    fs = filesystem(url)
    for name in (*_METADATA[:3], "attributes.json"):
        try:
            data = fs.cat_file(str(stores.child(url, name)))
        except (FileNotFoundError, aiohttp.ClientResponseError):
            continue
        try:
            if isinstance(json.loads(data), dict):
                return
        except ValueError:
            pass
        raise error(f"Input {url} is not a Zarr, OME-Zarr or N5 store: the server answers "
                    f"{name} with something that is not JSON metadata ({_kind(data)})")


def _kind(data: bytes) -> str:
    head = bytes(data[:200]).lstrip().lower()
    return "a web page" if head.startswith((b"<!doctype html", b"<html")) else \
        f"{len(data)} bytes"


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
# metadata files the zarr and N5 readers read when opening a folder (and its parents)
_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs", "attributes.json")
# chunk files checked below a zarr or N5 input: enough for any test or hostile case, and
# a bounded cost (a directory listing, no stat) for volumes with millions of chunks
_SCAN_LIMIT = 200_000


def refuse_special(path: str, what: str) -> None:
    """Refuse a path that is neither a regular file nor a folder, without opening it.

    Reading a FIFO blocks until something writes to it, and a device or socket is no
    volume: such a path ends in a :class:`PssrError` naming it. A missing path passes
    (the caller reports it).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "a special file")
    raise error(f"{what} {path} is {kind}, not a regular file or folder; "
                "pssr-volume reads volumes only from regular files.")


def _refuse_special_inside(folder: str) -> None:
    """Refuse FIFOs, sockets and devices that opening or reading `folder` would read."""
    from pssr_volume.io.n5 import is_n5
    from pssr_volume.io.zarr_input import is_zarr

    parents = [folder]
    for _ in range(3):  # OME-Zarr levels are opened through their group, up to 3 levels up
        parents.append(os.path.dirname(parents[-1]))
    for where in (*parents, os.path.join(folder, "s0")):
        for name in _METADATA:
            refuse_special(os.path.join(where, name), "Metadata file")
    if is_zarr(folder) or is_n5(folder):
        _scan_chunks(folder)
        _refuse_special_bdv_xml(folder)
        return
    with os.scandir(folder) as entries:  # a TIFF folder: every slice is opened
        for e in entries:
            slice_name = e.name.lower().endswith(TIFF_SUFFIXES) and not e.name.startswith(".")
            if slice_name and not (e.is_file() or e.is_dir()):
                refuse_special(e.path, "TIFF slice")


def _scan_chunks(folder: str) -> None:
    seen, todo = 0, [folder]
    while todo and seen < _SCAN_LIMIT:
        with os.scandir(todo.pop()) as entries:
            for e in entries:
                seen += 1
                if e.is_dir():
                    todo.append(e.path)
                elif not e.is_file():  # a FIFO, socket, device or broken link
                    refuse_special(e.path, "File")


def _refuse_special_bdv_xml(folder: str) -> None:
    """The BigDataViewer XML that the N5 reader looks for beside ``root.n5/setupN/tT/sK``."""
    for where in (folder, os.path.join(folder, "s0")):
        parts = os.path.normpath(where).split(os.sep)
        if len(parts) >= 4 and parts[-3].startswith("setup") and parts[-1].startswith("s"):
            beside = os.path.dirname(os.sep.join(parts[:-3]))
            with os.scandir(beside) as entries:
                for e in entries:
                    if e.name.lower().endswith(".xml") and not e.is_file():
                        refuse_special(e.path, "BigDataViewer XML")


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
