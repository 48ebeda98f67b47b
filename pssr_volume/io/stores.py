"""Folders that are local paths or object-storage URLs: the few operations the output
store, the level arrays and the readers need, and the zarr store of each.

A local path keeps exactly its old behaviour (``pathlib``, ``shutil``, zarr's
``LocalStore``); an ``s3://``, ``gs://`` or ``http(s)://`` URL (:mod:`pssr_volume.urls`) goes
through its fsspec file system and zarr's ``FsspecStore``. An object store has no folders:
a "folder" exists when an object lies below it. Errors of a remote store become one line
(:func:`pssr_volume.io.filesystems.remote_errors`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pssr_volume.io.filesystems import filesystem, fs_path, remote_errors, storage_options
from pssr_volume.urls import Url, is_url, join
from pssr_volume.urls import parent as url_parent

Location = Path | Url | str  # a local path, or a URL (a str with a scheme)

STATE_DIR = ".pssr-volume"  # an output's state folder: its lease and journal

__all__ = [
    "STATE_DIR", "absolute", "child", "contents", "exists", "is_dir", "is_file", "is_url",
    "location", "log_path", "parent", "read_bytes", "remote_errors", "remove", "remove_tree",
    "zarr_store",
]


def location(where: str | Path) -> Location:
    """``where`` as a location: a URL stays the string it is, anything else is a Path."""
    return where if isinstance(where, str) and is_url(where) else Path(where)


def child(where: Location, *names: str) -> Location:
    """``where/name/...``."""
    return join(str(where), *names) if is_url(where) else Path(where).joinpath(*names)


def parent(where: Location) -> Location | None:
    """One level up (None above a URL's bucket or a file system's root)."""
    if is_url(where):
        return url_parent(str(where))
    p = Path(where)
    return None if p.parent == p else p.parent


def absolute(where: Location) -> str:
    """What tasks are given: the resolved local path, or the URL."""
    return str(where) if is_url(where) else str(Path(where).resolve())


def exists(where: Location) -> bool:
    """Whether a file, folder, object or a prefix with objects is there."""
    if not is_url(where):
        return Path(where).exists()
    if str(where).startswith(("http://", "https://")):
        return _http_exists(str(where))
    with remote_errors(str(where)):
        return bool(filesystem(str(where)).exists(fs_path(str(where))))


def is_file(where: Location) -> bool:
    """Whether a file (an object) is there."""
    if not is_url(where):
        return Path(where).is_file()
    if str(where).startswith(("http://", "https://")):
        return _http_exists(str(where))
    with remote_errors(str(where)):
        return bool(filesystem(str(where)).isfile(fs_path(str(where))))


def _http_exists(url: str) -> bool:
    """Whether a web server serves ``url``: any status of 400 or more is "no" (a public
    bucket answers 403 for a missing key), but a server that cannot be reached or stays
    silent is one line (fsspec's own ``exists`` takes a timeout for "no")."""
    import aiohttp

    with remote_errors(url):
        try:
            return bool(filesystem(url).exists(url, strict=True))
        except (FileNotFoundError, aiohttp.ClientResponseError):
            return False


def is_dir(where: Location) -> bool:
    """Whether a folder (objects below a prefix) is there."""
    if not is_url(where):
        return Path(where).is_dir()
    with remote_errors(str(where)):
        return bool(filesystem(str(where)).isdir(fs_path(str(where))))


def contents(where: Location, skip: str = "") -> list[str]:
    """The names a folder holds (``skip`` left out); none when it does not exist."""
    if not is_url(where):
        return [p.name for p in Path(where).iterdir() if p.name != skip]
    fs, path = filesystem(str(where)), fs_path(str(where))
    with remote_errors(str(where)):
        try:
            found = fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
    names = {str(f).rstrip("/").rpartition("/")[2] for f in found}
    return sorted(n for n in names if n and n != skip)


def read_bytes(where: Location) -> bytes:
    """A file's (an object's) bytes; FileNotFoundError when it is not there."""
    if not is_url(where):
        return Path(where).read_bytes()
    fs = filesystem(str(where))
    try:
        return bytes(fs.cat_file(fs_path(str(where))))
    except FileNotFoundError:
        raise
    except Exception:
        with remote_errors(str(where)):
            raise


def remove(where: Location) -> None:
    """Delete a file (an object); nothing when it is not there."""
    if not is_url(where):
        Path(where).unlink(missing_ok=True)
        return
    fs = filesystem(str(where))
    with remote_errors(str(where)), contextlib.suppress(FileNotFoundError):
        fs.rm_file(fs_path(str(where)))


def remove_tree(where: Location) -> None:
    """Delete a folder and everything below it (a file: just it; nothing: nothing)."""
    if not is_url(where):
        p = Path(where)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
        return
    fs = filesystem(str(where))
    with remote_errors(str(where)):
        with contextlib.suppress(FileNotFoundError):
            fs.rm(fs_path(str(where)).rstrip("/") + "/", recursive=True)
        if fs.isfile(fs_path(str(where))):
            fs.rm_file(fs_path(str(where)))


def zarr_store(where: Location, read_only: bool = True) -> Any:
    """The zarr store of a folder: ``LocalStore`` or ``FsspecStore``."""
    if not is_url(where):
        from zarr.storage import LocalStore

        return LocalStore(str(where), read_only=read_only)
    from zarr.storage import FsspecStore

    url = str(where)
    with remote_errors(url, None):
        if url.startswith("gs://"):
            # our gcsfs file system (see filesystems._filesystem), its calls run in threads:
            # a second, asynchronous gcsfs instance on zarr's event loop would print a
            # traceback at exit (gcsfs closes its session on fsspec's loop)
            from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

            return FsspecStore(AsyncFileSystemWrapper(filesystem(url), asynchronous=True),
                               path=fs_path(url), read_only=read_only)
        return FsspecStore.from_url(url, storage_options=storage_options(url),
                                    read_only=read_only)


def log_path(output: Location) -> Path:
    """Where the clusters of a run on ``output`` log: ``<output>.log`` beside a local
    output; for a URL, a file in the temporary folder named after it."""
    if not is_url(output):
        out = Path(output)
        return out.with_name(out.name + ".log")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(output).split("://", 1)[1]).strip("_")
    return Path(tempfile.gettempdir()) / f"pssr-volume-{safe}.log"
