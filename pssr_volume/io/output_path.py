"""Whether the operating system lets a command write a local output where it is named.

:func:`check_output_path` runs before any planning, so that a name that is too long, a
path over the system's limit, a symbolic-link loop, a file where a folder should be, a
read-only mount or a folder without write permission is one line at once, not an error
of the first write after minutes of planning. URLs are left to their stores.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path

from pssr_volume.errors import PssrError
from pssr_volume.urls import is_url

__all__ = ["check_output_path"]

# the longest name pssr-volume writes below an output folder: the journal's
# ".pssr-volume/journal/<host>-<pid>-<token>-<n>.log", or a chunk "12/c/0/0/0/0" of a
# level (with a 64-byte host name)
INNER_BYTES = 160

_WHY = {
    errno.ELOOP: "a symbolic-link loop (too many levels of symbolic links)",
    errno.ENAMETOOLONG: "a name or path too long for the file system",
    errno.ENOTDIR: "a file where a folder is needed",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "a read-only file system",
    errno.ENOENT: "a place where nothing can be created",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "over the disk quota",
}


def _why(e: OSError) -> str:
    return _WHY.get(e.errno or 0, e.strerror or type(e).__name__)


def _shown(where: object) -> str:
    """A path as a message shows it: a very long one with its middle left out."""
    text = str(where)
    return text if len(text) <= 160 else f"{text[:80]}...{text[-60:]}"


def _limit(where: str, name: str, default: int) -> int:
    try:
        return int(os.pathconf(where, name))
    except (OSError, ValueError):
        return default


def check_output_path(output: str | os.PathLike[str]) -> None:
    """Refuse a local output path the operating system would not let us write.

    Checks, without writing anything that stays: every name's length and the whole path's
    (with room for the names written inside an output folder), the folders above it (a
    loop, a file, no permission), and that the nearest existing folder takes a new entry
    (a folder is created there and removed at once: read-only mounts, ``/proc``, missing
    permission). An existing output is checked for write permission only.

    Raises
    ------
    PssrError
        One line naming the output and what is wrong.
    """
    if is_url(output):
        return
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(output))))
    existing = _nearest_existing(path, output)
    name_max = _limit(str(existing), "PC_NAME_MAX", 255)
    for part in path.parts[1:]:
        size = len(os.fsencode(part))
        if size > name_max:
            short = part if len(part) <= 40 else part[:20] + "..." + part[-12:]
            raise PssrError(f"cannot write output {_shown(output)}: the name {short!r} is "
                            f"{size} bytes long; the file system allows {name_max}")
    path_max = _limit(str(existing), "PC_PATH_MAX", 4096) - 1
    size = len(os.fsencode(str(path)))
    if size + INNER_BYTES > path_max:
        raise PssrError(f"cannot write output {_shown(output)}: its path is {size} bytes "
                        f"long, and the files inside it add up to {INNER_BYTES} more; the "
                        f"system allows {path_max} in all (choose a shorter path)")
    if existing == path:
        _check_existing(path, output)
        return
    if not existing.is_dir():
        raise PssrError(f"cannot write output {_shown(output)}: {_shown(existing)} is a file, "
                        "not a folder")
    probe = existing / f".pssr-volume-probe-{uuid.uuid4().hex[:12]}"
    try:
        probe.mkdir()
    except OSError as e:
        raise PssrError(f"cannot write output {_shown(output)}: cannot create anything in "
                        f"{_shown(existing)} ({_why(e)})") from None
    with contextlib.suppress(OSError):
        probe.rmdir()


def _nearest_existing(path: Path, output: str | os.PathLike[str]) -> Path:
    """The path itself or its nearest ancestor that exists; one line for a loop, a file
    above it or a folder we may not look into."""
    for where in (path, *path.parents):
        try:
            os.stat(where)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):  # said below
                continue
            head = f"cannot write output {_shown(output)}: {_shown(where)}"
            raise PssrError(f"{head} is {_why(e)}" if e.errno == errno.ELOOP
                            else f"{head}: {_why(e)}") from None
        return where
    return Path(path.anchor)


def _check_existing(path: Path, output: str | os.PathLike[str]) -> None:
    """An existing output (resumed, replaced or refused later): may we write it?"""
    target = path if path.is_dir() else path.parent
    try:
        read_only = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise PssrError(f"cannot write output {_shown(output)}: it is on a read-only file system")
    if not os.access(target, os.W_OK | os.X_OK):
        raise PssrError(f"cannot write output {_shown(output)}: {_shown(target)} is not writable "
                        "(permission denied)")
