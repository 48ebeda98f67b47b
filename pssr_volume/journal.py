"""Which tasks of a run are done: append-only logs, one file per process.

A task is recorded only after its data is fully written. Each worker process
appends to its own file (no lock is shared between processes, and a shared
file system never sees two writers on one file); a line is written with a
single ``write`` call and a torn last line (a process killed mid-write) is
ignored when reading. One file per process, not one per block, keeps a
teravoxel run to a handful of files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import uuid
from pathlib import Path

STATE_DIR = ".pssr-volume"
_LOCK = threading.Lock()
_TOKEN = uuid.uuid4().hex[:8]


class Journal:
    """The done-log of one output.

    Parameters
    ----------
    output : str or Path
        The output store; logs live in ``<output>/.pssr-volume/journal/``.
    """

    def __init__(self, output: str | os.PathLike):
        self.dir = Path(output) / STATE_DIR / "journal"

    def _own_file(self) -> Path:
        return self.dir / f"{socket.gethostname()}-{os.getpid()}-{_TOKEN}.log"

    def mark(self, key: str) -> None:
        """Record task ``key`` as done (call only after its data is written)."""
        if "\n" in key:
            raise ValueError("journal keys are single lines")
        line = (key + "\n").encode()
        with _LOCK:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._own_file(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def remove(self) -> None:
        """Delete the logs (the run is complete: nothing is left to resume)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.dir.parent.rmdir()  # the state folder, when nothing else is in it

    def replace(self, keys: set[str]) -> None:
        """Make ``keys`` the only tasks recorded as done (``--resume --verify`` forgets the
        tasks whose data was found damaged). Call only while no task runs (the driver,
        holding the output's lease). A crash part way leaves fewer tasks done, never more:
        the new log is written under a temporary name, the old logs are deleted, and only
        then is the new one renamed into place."""
        if any("\n" in k for k in keys):
            raise ValueError("journal keys are single lines")
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"verified-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self.dir / f"{name}.tmp"
        tmp.write_text("".join(k + "\n" for k in sorted(keys)))
        for f in self.dir.glob("*.log"):
            f.unlink()
        os.replace(tmp, self.dir / f"{name}.log")

    def done(self) -> set[str]:
        """Keys of all tasks recorded as done, by any process."""
        keys: set[str] = set()
        if not self.dir.is_dir():
            return keys
        for f in self.dir.glob("*.log"):
            text = f.read_text()
            lines = text.split("\n")
            keys.update(line for line in lines[:-1] if line)  # last piece: torn or empty
        return keys
