"""Connecting to an existing Dask scheduler (``--cluster tcp://HOST:PORT``), bounded in time.

A plain TCP connect fails at once for a refused port or an unknown host; then the Dask
handshake and an ``identity`` request run under one deadline, so an HTTP server or a silent
listener at the address gives one line, not a hang.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from typing import Any

from pssr_volume.config import check_scheduler_address
from pssr_volume.errors import PssrError, first_line

CONNECT_TIMEOUT_S = 10.0  # connecting to a tcp:// scheduler, handshake included


def is_address(cluster: str) -> bool:
    return cluster.startswith("tcp://") and len(cluster) > len("tcp://")


def check_address(address: str) -> None:
    """Refuse a ``tcp://`` address without a host or a valid port, before any work (the
    rule of :func:`pssr_volume.config.check_scheduler_address`)."""
    try:
        check_scheduler_address(address)
    except ValueError as e:
        raise PssrError(f"--cluster {e}") from None


def connect(address: str, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    from dask.distributed import Client

    check_address(address)
    probe_scheduler(address, timeout)
    try:
        return Client(address, timeout=f"{timeout}s")
    except Exception as e:
        raise PssrError(f"cannot connect to a Dask scheduler at {address}: "
                        f"{first_line(e)}") from None


def probe_scheduler(address: str, timeout: float) -> None:
    """Connect to `address` and ask the server who it is, within `timeout` seconds in all.

    ``Client(address, timeout=...)`` bounds only the TCP connection: a peer that accepts
    and never answers the Dask handshake (a silent listener, an HTTP server) would keep
    it waiting forever. Here the TCP connection is tried once (a refused or unknown host
    fails at once), then the handshake and an ``identity`` request run under the rest of
    the deadline, on a private event loop in a daemon thread; the reply is not unpickled.

    Raises
    ------
    PssrError
        ``cannot connect to a Dask scheduler at ADDRESS: why``.
    """
    import socket
    import time

    def fail(why: str) -> PssrError:
        return PssrError(f"cannot connect to a Dask scheduler at {address}: {why}")

    parts = urllib.parse.urlsplit(address)
    host, port = parts.hostname or "", parts.port or 0
    deadline = time.monotonic() + timeout
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except TimeoutError:
        raise fail(f"no TCP connection within {timeout:g} s") from None
    except socket.gaierror as e:
        raise fail(f"unknown host {host!r} ({e.strerror or e})") from None
    except ConnectionRefusedError:
        raise fail("connection refused (is the scheduler running, on this port?)") from None
    except OSError as e:
        raise fail(e.strerror or first_line(e)) from None

    from distributed.comm import connect

    left = max(1.0, deadline - time.monotonic())

    async def identity() -> Any:
        comm = await connect(address, timeout=left, deserialize=False)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            outcome["reply"] = asyncio.run(asyncio.wait_for(identity(), left))
        except BaseException as e:  # reported below, in the calling thread
            outcome["error"] = e

    thread = threading.Thread(target=ask, name="pssr-volume-scheduler-probe", daemon=True)
    thread.start()
    thread.join(left + 5)
    reply, err = outcome.get("reply"), outcome.get("error")
    if thread.is_alive() or isinstance(err, TimeoutError):
        raise fail(f"the server accepted the connection but sent no Dask handshake within "
                   f"{timeout:g} s (is it a Dask scheduler?)")
    if isinstance(err, MemoryError):  # a reply that is no Dask frame: a huge "length"
        raise fail("the server does not speak the Dask protocol (its reply is no Dask message)")
    if err is not None:
        raise fail(f"the server does not speak the Dask protocol ({first_line(err)})")
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        raise fail(f"the server there is a Dask {kind}, not the scheduler" if isinstance(kind, str)
                   else "the server answered, but not as a Dask scheduler")
