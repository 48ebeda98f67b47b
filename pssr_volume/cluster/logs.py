"""Where the clusters this process starts write their logs: a file beside the output.

A ``local`` or ``cuda`` cluster's scheduler and nannies run in this process and its workers
in child processes; on Ctrl-C, SIGTERM or a full disk they print dozens of lines (comm
errors, tracebacks, restarts). :func:`logs_to` sends them to ``<output>.log``
(:func:`worker_log_path`) instead of the terminal, so a failed run ends with one line, which
names that file.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pssr_volume.errors import PssrError, RunFailed, kept

__all__ = ["Interrupted", "logs_to", "worker_log_path"]


class Interrupted(RunFailed):
    """Ctrl-C during a run whose cluster logs go to a file: one line, exit status 130."""

    exit_code = 130


def worker_log_path(output: str | os.PathLike) -> Path:
    """The log file of the clusters started for a run on ``output``: ``<output>.log``,
    beside it (it outlives the output's state folder, which completion removes)."""
    out = Path(output)
    return out.with_name(out.name + ".log")


def _on_fd2(stream: Any) -> bool:
    try:
        return bool(stream.fileno() == 2)
    except (AttributeError, OSError, ValueError):
        return False


def _flush(*streams: Any) -> None:
    for stream in streams:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()


@contextlib.contextmanager
def logs_to(path: Path | None) -> Iterator[None]:
    """Send file descriptor 2 to ``path`` for the ``with`` body: the in-process scheduler
    and nannies log through handlers bound to it, and the worker processes started meanwhile
    (restarted ones too) inherit it. This process's own messages still reach the terminal:
    ``sys.stderr``, when it is descriptor 2, is pointed at a copy of the original for the
    body. A PssrError leaving the body names the file; Ctrl-C becomes :class:`Interrupted`.
    When nothing was logged, the file is left as it was (removed if it was new)."""
    if path is None:
        yield
        return
    # distributed binds its log handlers to sys.stderr when first imported: import it now,
    # while sys.stderr is still descriptor 2, so its messages follow descriptor 2 to the file
    import distributed  # noqa: F401

    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise PssrError(f"cannot write the log file {path}: {e.strerror or e}") from None
    before = os.fstat(fd).st_size
    stamp = datetime.datetime.now().isoformat(sep=" ", timespec="seconds")
    header = f"--- {stamp} pssr-volume pid {os.getpid()} on {socket.gethostname()}\n".encode()
    with contextlib.suppress(OSError):  # a full disk: the run reports it, not the log
        os.write(fd, header)
    _flush(sys.stderr, sys.__stderr__)
    saved = os.dup(2)
    terminal, swapped = None, _on_fd2(sys.stderr)
    if swapped:
        terminal = sys.stderr
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, errors="backslashreplace",
                               encoding=getattr(terminal, "encoding", None) or "utf-8")
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    os.dup2(fd, 2)
    failed = True
    try:
        yield
        failed = False
    except PssrError as e:
        if e.args:
            e.args = (f"{e.args[0]} (logs: {path})", *e.args[1:])
        raise
    except KeyboardInterrupt as e:
        raise Interrupted(f"interrupted ({kept(e)}; rerun with --resume; logs: {path})"
                          ) from None
    finally:
        _flush(sys.__stderr__, terminal)
        # A failed run of the command line ends the process right after its one line; the
        # cluster's background threads may still log while closing: they keep the file.
        keep = failed and swapped
        if not keep:
            os.dup2(saved, 2)
            os.close(saved)
            if terminal is not None:
                _flush(sys.stderr)
                sys.stderr.close()
                sys.stderr = terminal
        logging.raiseExceptions = raise_exceptions
        with contextlib.suppress(OSError):
            if not failed and os.fstat(fd).st_size <= before + len(header):
                if before == 0:
                    path.unlink()
                else:
                    os.ftruncate(fd, before)
        if not keep:
            os.close(fd)
