"""Which tasks of a run are done: append-only logs, one file per process.

A task is recorded only after its data is fully written. Each worker process
appends to its own file (no lock is shared between processes, and a shared
file system never sees two writers on one file); a line is written with a
single ``write`` call and a torn last line (a process killed mid-write) is
ignored when reading. One file per process, not one per block, keeps a
teravoxel run to a handful of files. A line is a task's key, optionally followed by a tab
and a short note about it (a block's data-consistency sums: :mod:`pssr_volume.consistency`).

Object storage (an ``s3://`` or ``gs://`` output) has no append: there each task is
recorded as one small object, ``journal/<host>-<pid>-<token>-<n>.log``, written in one
atomic put, and :meth:`Journal.done` lists and reads them (see :mod:`pssr_volume.io.objects`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import threading
import uuid
from pathlib import Path

from pssr_volume.io import objects
from pssr_volume.io.stores import STATE_DIR
from pssr_volume.urls import is_url, join

_LOCK = threading.Lock()
_TOKEN = uuid.uuid4().hex[:8]
_COUNT = itertools.count()


class Journal:
    """The done-log of one output.

    Parameters
    ----------
    output : str or Path
        The output store; logs live in ``<output>/.pssr-volume/journal/``.
    """

    def __init__(self, output: str | os.PathLike):
        self.url = join(str(output), STATE_DIR, "journal") if is_url(output) else None
        self.dir = Path(output) / STATE_DIR / "journal"  # (local outputs)

    def _own_file(self) -> Path:
        return self.dir / f"{socket.gethostname()}-{os.getpid()}-{_TOKEN}.log"

    def mark(self, key: str, note: str | None = None) -> None:
        """Record task ``key`` as done (call only after its data is written), with an
        optional single-line ``note`` about it."""
        if "\n" in key or "\t" in key or (note is not None and "\n" in note):
            raise ValueError("journal keys and notes are single lines; keys have no tab")
        line = (key + ("" if note is None else "\t" + note) + "\n").encode()
        if self.url is not None:  # one object per task: object stores have no append
            name = f"{socket.gethostname()}-{os.getpid()}-{_TOKEN}-{next(_COUNT)}.log"
            objects.write(join(self.url, name), line)
            return
        with _LOCK:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._own_file(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def remove(self) -> None:
        """Delete the logs (the run is complete: nothing is left to resume)."""
        if self.url is not None:
            objects.delete_tree(self.url)
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.dir.parent.rmdir()  # the state folder, when nothing else is in it

    def replace(self, keys: set[str]) -> None:
        """Make ``keys`` the only tasks recorded as done (``--resume --verify`` forgets the
        tasks whose data was found damaged). Call only while no task runs (the driver,
        holding the output's lease). A crash part way leaves fewer tasks done, never more:
        the new log is written under a temporary name, the old logs are deleted, and only
        then is the new one renamed into place."""
        if any("\n" in k or "\t" in k for k in keys):
            raise ValueError("journal keys are single lines without tabs")
        notes = self.notes()  # kept with the keys they describe
        lines = "".join(k + (f"\t{notes[k]}" if k in notes else "") + "\n" for k in sorted(keys))
        if self.url is not None:
            self._replace_objects(lines.encode())
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"verified-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self.dir / f"{name}.tmp"
        tmp.write_text(lines)
        for f in self.dir.glob("*.log"):
            f.unlink()
        os.replace(tmp, self.dir / f"{name}.log")

    def _replace_objects(self, data: bytes) -> None:
        assert self.url is not None
        name = f"verified-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = join(self.url, f"{name}.tmp")  # not read by done(); the same order as above
        objects.write(tmp, data)
        for old in objects.names(self.url):
            if old.endswith(".log"):
                objects.delete(join(self.url, old))
        objects.write(join(self.url, f"{name}.log"), data)
        objects.delete(tmp)

    def done(self) -> set[str]:
        """Keys of all tasks recorded as done, by any process."""
        return {line.partition("\t")[0] for line in self._lines() if line}

    def notes(self) -> dict[str, str]:
        """The notes of the tasks recorded with one, by key."""
        return {k: n for k, n in self._records().items() if n is not None}

    def _records(self) -> dict[str, str | None]:
        records: dict[str, str | None] = {}
        for line in self._lines():
            if line:
                key, _, note = line.partition("\t")
                records[key] = note or records.get(key)
        return records

    def _lines(self) -> list[str]:
        lines: list[str] = []
        if self.url is not None:
            logs = [n for n in objects.names(self.url) if n.endswith(".log")]
            for data in objects.read_all(self.url, logs).values():
                lines.extend(data.decode().split("\n"))
        elif self.dir.is_dir():
            for f in self.dir.glob("*.log"):
                lines.extend(f.read_text().split("\n")[:-1])  # last piece: torn or empty
        return lines
