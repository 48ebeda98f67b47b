"""What a lease file says: the process holding an output (:mod:`pssr_volume.io.lease`), where
its file or object lives, and whether it is stale (heartbeat older than
:data:`STALE_AFTER_S`, or on this host a pid that no longer exists)."""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pssr_volume.io import objects
from pssr_volume.io.filesystems import remote_errors
from pssr_volume.io.stores import STATE_DIR
from pssr_volume.urls import is_url, join

LEASE_FILE = "lease.json"
STALE_AFTER_S = 60.0  # a heartbeat older than this is a dead (or paused) holder


def lease_path(output: str | os.PathLike) -> Path:
    """Where the lease of ``output`` lives."""
    return Path(output) / STATE_DIR / LEASE_FILE


@dataclass(frozen=True)
class Holder:
    """What a lease file says about the process holding it."""

    host: str
    pid: int
    token: str
    command: str
    started: float
    heartbeat: float
    version: str = ""  # an object store's version (ETag) of the lease that was read

    def since(self) -> str:
        """When the lease was taken, local time to the second."""
        return datetime.datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M:%S")

    def is_stale(self, now: float | None = None, timeout: float = STALE_AFTER_S) -> bool:
        """Heartbeat older than ``timeout`` s, or (same host) the pid is gone."""
        now = time.time() if now is None else now
        if now - self.heartbeat > timeout:
            return True
        return self.host == socket.gethostname() and not pid_alive(self.pid)

    def describe(self, output: str | os.PathLike) -> str:
        """The one-line refusal for another run on ``output``."""
        return (f"output {output} is being written by {self.command} (pid {self.pid} on "
                f"{self.host}) since {self.since()}; wait for it or stop it")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def read_holder(output: str | os.PathLike) -> Holder | None:
    """The lease of ``output``: ``None`` when there is none. A lease file that cannot be
    parsed (created an instant ago and not yet written, or damaged) is reported as held by
    pid 0 with its modification time as heartbeat: live while that is recent."""
    if is_url(output):
        with remote_errors(str(output)):
            found = objects.read(lease_url(output))
        return None if found is None else _parse(*found)
    path = lease_path(output)
    try:
        data = path.read_bytes()
        mtime = path.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None
    return _parse(data, "", mtime)


def lease_url(output: str | os.PathLike) -> str:
    """Where the lease of an object-storage ``output`` lives."""
    return join(str(output), STATE_DIR, LEASE_FILE)


def _parse(data: bytes, version: str, modified: float) -> Holder:
    try:
        d = json.loads(data)
        return Holder(str(d["host"]), int(d["pid"]), str(d["token"]), str(d["command"]),
                      float(d["started"]), float(d["heartbeat"]), version)
    except (ValueError, KeyError, TypeError):
        return Holder("?", 0, "", "an unknown process", modified, modified, version)


def read_holder_file(path: Path) -> Holder | None:
    """:func:`read_holder` for a lease file at ``path``."""
    try:
        d = json.loads(path.read_text())
        return Holder(str(d["host"]), int(d["pid"]), str(d["token"]), str(d["command"]),
                      float(d["started"]), float(d["heartbeat"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
