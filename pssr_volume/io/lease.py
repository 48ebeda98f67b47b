"""One writer per output: a lease file that a run (or conversion) holds while it writes.

The lease is ``<output>/.pssr-volume/lease.json``: host, pid, a random token, the command,
when it was taken and a heartbeat. It is taken atomically by creating the file with
``O_CREAT | O_EXCL`` (atomic on local file systems and on NFS v3+, Lustre and GPFS), so of
two runs that start at the same moment exactly one gets it; the other is refused with one
line naming the holder. While held, a daemon thread rewrites the heartbeat every
:data:`REFRESH_S` seconds (write a temporary file, then ``os.replace``: readers never see a
torn lease). It is released (deleted, only if it still holds our token) when the run ends,
also on failure, SIGTERM or Ctrl-C.

A lease is *stale* when its heartbeat is older than :data:`STALE_AFTER_S` seconds (a run on
another host that was killed, or paused that long), or, on the same host, when its pid no
longer exists. A stale lease is broken: renamed away (only one breaker can rename it), checked
to be the stale lease that was judged (else put back), then taken with ``O_EXCL`` as usual.
Heartbeats are wall-clock times, so hosts sharing an output need clocks that agree to well
within :data:`STALE_AFTER_S`. A run whose lease is broken while it was paused notices at its
next heartbeat and stops (the main thread is interrupted; see :attr:`Lease.lost`).

On object storage (an ``s3://`` or ``gs://`` output, :mod:`pssr_volume.io.objects`) the lease
is the object ``<output>/.pssr-volume/lease.json``, created with a conditional put that
fails when it exists (S3 ``If-None-Match: *``, GCS ``ifGenerationMatch=0``): of two runs
exactly one gets it. The heartbeat and the breaking of a stale lease are conditional puts on
the version read (S3 ``If-Match: <ETag>``, GCS ``ifGenerationMatch=<generation>``): of two
breakers one wins, and a holder whose lease was broken finds its next heartbeat refused and
stops. Release reads the lease and deletes it if it holds our token.

What a lease says and when it is stale: :mod:`pssr_volume.io.lease_holder`.
"""

from __future__ import annotations

import _thread
import contextlib
import datetime
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from pssr_volume.errors import PssrError, RunFailed
from pssr_volume.io import objects
from pssr_volume.io.filesystems import remote_errors
from pssr_volume.io.lease_holder import (
    LEASE_FILE,
    STALE_AFTER_S,
    Holder,
    lease_path,
    lease_url,
    read_holder,
    read_holder_file,
)
from pssr_volume.urls import is_url

__all__ = ["Holder", "Lease", "check_not_leased", "held_token", "hold", "lease_path",
           "lease_url", "live_holder", "read_holder"]

REFRESH_S = 10.0  # seconds between heartbeats

_HELD: dict[str, str] = {}  # resolved output path -> token of a lease this process holds
_HELD_LOCK = threading.Lock()


def live_holder(output: str | os.PathLike) -> Holder | None:
    """The holder of a live lease on ``output`` that is not this process's own, else
    ``None`` (no lease, a stale one, or ours)."""
    holder = read_holder(output)
    if holder is None or holder.is_stale() or holder.token == held_token(output):
        return None
    return holder


def check_not_leased(output: str | os.PathLike) -> None:
    """Refuse (one line, exit 2) when another process holds a live lease on ``output``."""
    holder = live_holder(output)
    if holder is not None:
        raise PssrError(holder.describe(output))


def held_token(output: str | os.PathLike) -> str | None:
    """The token of the lease this process holds on ``output``, if any."""
    with _HELD_LOCK:
        return _HELD.get(_key(output))


def _key(output: str | os.PathLike) -> str:
    return str(output) if is_url(output) else str(Path(output).resolve())


def _content(token: str, command: str, started: float) -> bytes:
    now = time.time()
    return json.dumps({
        "host": socket.gethostname(), "pid": os.getpid(), "token": token, "command": command,
        "started": started, "heartbeat": now,
        "started_utc": datetime.datetime.fromtimestamp(started, datetime.UTC)
        .isoformat(timespec="seconds"),
        "stale_after_s": STALE_AFTER_S,
    }).encode()


def _create(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` if it does not exist; whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _break(path: Path, judged: Holder) -> None:
    """Move the stale lease ``judged`` out of the way (at most one breaker succeeds)."""
    aside = path.with_name(f"{LEASE_FILE}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another run broke (or its holder released) it first
    moved = read_holder_file(aside)
    if moved is not None and moved.token != judged.token and not moved.is_stale():
        # a lease taken after we judged: put it back (link fails if yet another exists)
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    with contextlib.suppress(OSError):
        aside.unlink()


class Lease:
    """The lease of one output, held by this process (see :func:`hold`)."""

    def __init__(self, output: str | os.PathLike, command: str,
                 refresh_s: float = REFRESH_S):
        self.url = lease_url(output) if is_url(output) else None
        self.output = str(output) if self.url else Path(output)
        self.command, self.refresh_s = command, refresh_s
        self.path = lease_path(output)  # (local outputs)
        self.version = ""  # (object storage) the version of our lease object
        self.token = uuid.uuid4().hex
        self.started = time.time()
        self.lost: Holder | None = None  # who took it from us, if anyone did
        self.gone = False  # whether the lease went because the output was deleted
        self.made = False  # whether take() created the output folder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self) -> None:
        """Create the output folder and the lease in it, breaking a stale lease.

        Raises
        ------
        PssrError
            When another process holds a live lease (nothing is written then, except an
            output folder this call created and removes again).
        """
        if self.url is not None:
            with remote_errors(str(self.output), "no such bucket for the output"):
                self._take_object(self.url)
            return
        assert isinstance(self.output, Path)
        made = self.made = not self.output.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise PssrError(f"output {self.output} exists and is not a folder") from None
        for _ in range(5):
            if _create(self.path, _content(self.token, self.command, self.started)):
                with _HELD_LOCK:
                    _HELD[_key(self.output)] = self.token
                self._start_heartbeat()
                return
            holder = read_holder(self.output)
            if holder is not None and not holder.is_stale():
                if made:  # leave no trace of this attempt
                    _remove_empty(self.path.parent, self.output)
                raise PssrError(holder.describe(self.output))
            if holder is not None:
                _break(self.path, holder)
        raise PssrError(f"could not take the lease on {self.output}: other runs keep "
                        "taking it; try again")

    def _take_object(self, url: str) -> None:
        for _ in range(5):
            data = _content(self.token, self.command, self.started)
            version = objects.create(url, data)
            holder = None
            if version is None:
                holder = read_holder(self.output)
                if holder is not None and not holder.is_stale():
                    raise PssrError(holder.describe(self.output))
                if holder is not None:  # stale: replace it, unless someone else did
                    version = objects.replace(url, data, holder.version)
            if version is not None:
                self.version = version
                with _HELD_LOCK:
                    _HELD[_key(self.output)] = self.token
                self._start_heartbeat()
                return
        raise PssrError(f"could not take the lease on {self.output}: other runs keep "
                        "taking it; try again")

    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="pssr-volume-lease",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.refresh_s):
            if not self.refresh():
                _thread.interrupt_main()  # another process owns the output now: stop
                return

    def refresh(self) -> bool:
        """Rewrite the heartbeat; ``False`` (and :attr:`lost` set) when the lease is no
        longer ours."""
        if self.url is not None:
            return self._refresh_object(self.url)
        holder = read_holder_file(self.path)
        if holder is None or holder.token != self.token:
            self.gone = holder is None and self.output_gone()
            self.lost = holder or Holder("?", 0, "", "another process", time.time(),
                                         time.time())
            return False
        tmp = self.path.with_name(f"{LEASE_FILE}.{self.token[:8]}.tmp")
        try:
            tmp.write_bytes(_content(self.token, self.command, self.started))
            os.replace(tmp, self.path)
        except OSError:  # a full or unreachable disk: try again at the next beat
            with contextlib.suppress(OSError):
                tmp.unlink()
        return True

    def _refresh_object(self, url: str) -> bool:
        data = _content(self.token, self.command, self.started)
        try:
            version = objects.replace(url, data, self.version)
            if version is not None:
                self.version = version
                return True
            holder = read_holder(self.output)
        except Exception:  # PssrError, OSError: unreachable for now, try at the next beat
            return True
        if holder is not None and holder.token == self.token:  # ours, with another version
            self.version = holder.version
            return True
        self.gone = holder is None and self.output_gone()
        self.lost = holder or Holder("?", 0, "", "another process", time.time(), time.time())
        return False

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still ours; the state folder
        goes too when nothing else is left in it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with _HELD_LOCK:
            if _HELD.get(_key(self.output)) == self.token:
                del _HELD[_key(self.output)]
        if self.url is not None:
            with contextlib.suppress(Exception):  # unreachable: it goes stale
                holder = read_holder(self.output)
                if holder is not None and holder.token == self.token:
                    objects.delete(self.url)
            return
        assert isinstance(self.output, Path)
        holder = read_holder_file(self.path)
        if holder is not None and holder.token == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only when empty (a journal stays for --resume)
            if self.made:
                self.output.rmdir()  # a run that wrote nothing leaves no empty folder

    def output_gone(self) -> bool:
        """Whether the output was deleted (False when that cannot be told)."""
        with contextlib.suppress(Exception):
            return not (self.output.exists() if isinstance(self.output, Path)
                        else objects.names(self.output))
        return False

    def lost_message(self) -> str:
        """The one line for a run whose lease went: the output was deleted, the lease file
        was deleted, or another process took the lease over."""
        who, out = self.lost, self.output
        if self.gone:
            return (f"stopped: {out} was deleted while this run wrote it; nothing of it is "
                    "kept (run the command again, without --resume)")
        if who is None or not who.pid:
            return (f"stopped: the lease file of {out} was deleted while this run held it (no "
                    "other run holds it); the finished blocks are kept (rerun with --resume)")
        return (f"stopped: the lease on {out} was taken over by pid {who.pid} on {who.host} "
                f"(this run was paused or unresponsive for over {STALE_AFTER_S:g} s); its "
                "finished blocks are kept")


def _remove_empty(state: Path, output: Path) -> None:
    for folder in (state, output):
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def hold(output: str | os.PathLike, command: str) -> Iterator[Lease]:
    """Hold the lease of ``output`` for the ``with`` body (see the module docstring).

    Raises
    ------
    PssrError
        When another process holds a live lease (exit 2, nothing written); or, if the lease
        was taken over while this body ran (this process was paused past the stale
        timeout), when the body ends with that interruption.
    """
    lease = Lease(output, command)
    lease.take()
    try:
        yield lease
    except BaseException as e:
        if lease.lost is None and lease.output_gone():  # a task failed on it first
            lease.gone, lease.lost = True, Holder("?", 0, "", "", 0.0, 0.0)
        if lease.lost is not None:
            raise RunFailed(lease.lost_message()) from e
        raise
    finally:
        lease.release()

