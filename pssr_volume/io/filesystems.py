"""The fsspec file systems of object-storage URLs, and their errors as one line.

One file system per scheme and environment, per process (s3fs, gcsfs, fsspec's aiohttp
HTTP), with no listing cache (other processes write the same output), short connection
timeouts, a read timeout (:func:`network_timeout`: a server that accepts a connection and
then says nothing) and few retries: an unreachable or silent endpoint fails within seconds,
as one line (:func:`remote_errors`). Credentials and endpoints come from the environment
only (see :mod:`pssr_volume.urls`).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

from pssr_volume.errors import PssrError
from pssr_volume.io.kvstores import gcs_emulator
from pssr_volume.urls import split

CONNECT_TIMEOUT_S = 5
TIMEOUT_ENV = "PSSR_VOLUME_NETWORK_TIMEOUT"
DEFAULT_TIMEOUT_S = 10.0


def network_timeout() -> float:
    """Seconds a remote store may stay silent (no byte on an open connection, or no
    connection) before a request fails: ``PSSR_VOLUME_NETWORK_TIMEOUT``, default 10.

    A read that still receives data never times out, however long it takes; a silent
    endpoint fails in about this time (S3, HTTP; GCS in about twice it: two tries)."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 1e6:
        raise PssrError(f"invalid {TIMEOUT_ENV}={text!r}: give a positive number of seconds")
    return value


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for the file system of ``url``: no listing cache (other processes
    write), short connect and read timeouts and few retries (gcsfs: :data:`GCS_TRIES`)."""
    scheme = split(url)[0]
    timeout = network_timeout()
    connect = min(CONNECT_TIMEOUT_S, timeout)
    if scheme == "s3":
        # an S3 request that times out is sent twice by aiobotocore, and tried twice: a
        # quarter each keeps a silent endpoint's error within about the timeout
        opts: dict[str, Any] = {
            "use_listings_cache": False,
            "config_kwargs": {"connect_timeout": connect, "read_timeout": timeout / 4,
                              "retries": {"max_attempts": 2, "mode": "standard"}}}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:  # s3fs reads it too; named here, it keys fsspec's instance cache
            opts["endpoint_url"] = endpoint
        return opts
    import aiohttp

    limits = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=timeout)
    if scheme == "gs":  # anonymous with an emulator, as Google's own clients are
        emulator = gcs_emulator()  # named here, it keys fsspec's instance cache
        return {"use_listings_cache": False, "requests_timeout": limits,
                "token": "anon" if emulator else None, "endpoint_url": emulator}
    return {"client_kwargs": {"timeout": limits}}


@functools.lru_cache(maxsize=8)
def _filesystem(scheme: str, environment: tuple[str | None, ...]) -> Any:
    del environment  # cache key only: a new endpoint or key makes a new file system
    import fsspec

    if scheme == "gs":
        # gcsfs's core GCSFileSystem (the JSON API): the one fsspec.filesystem("gs") gives
        # since gcsfs 2026 (experimental zonal-bucket support) first asks the gRPC control
        # API for each bucket's layout and does not remember a failure: a minute per
        # request against an emulator, or without the permission to ask
        return _quick_gcs()(skip_instance_cache=True, **storage_options(f"{scheme}://x"))
    fs = fsspec.filesystem(scheme, skip_instance_cache=True, **storage_options(f"{scheme}://x"))
    if scheme == "s3":
        fs.retries = 1  # s3fs's own tries around botocore's two (5 by default): fail sooner
    return fs


GCS_TRIES = 2  # gcsfs's are six, with 1 to 16 s of back-off between them


@functools.cache
def _quick_gcs() -> Any:
    """gcsfs's file system with :data:`GCS_TRIES` tries a request instead of six (a silent
    endpoint took ~100 s: six read timeouts plus ~31 s of back-off; now about two timeouts),
    and its "out of retries" tracebacks kept off the terminal: the failure is reported in
    one line by :func:`remote_errors`."""
    import logging

    from gcsfs.core import GCSFileSystem
    from gcsfs.retry import retry_request

    logging.getLogger("gcsfs").setLevel(logging.CRITICAL)

    class QuickGCSFileSystem(GCSFileSystem):
        _request = retry_request(retries=GCS_TRIES)(GCSFileSystem._request.__wrapped__)

    return QuickGCSFileSystem


_ENVIRONMENT = (TIMEOUT_ENV, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "STORAGE_EMULATOR_HOST",
                "GOOGLE_APPLICATION_CREDENTIALS")


def filesystem(url: str) -> Any:
    """The fsspec file system of ``url`` (one per scheme and environment, per process)."""
    return _filesystem(split(url)[0], tuple(os.environ.get(k) for k in _ENVIRONMENT))


def fs_path(url: str) -> str:
    """What the file system of ``url`` calls it: ``bucket/key`` (S3, GCS) or the URL."""
    scheme, bucket, key = split(url)
    return url if scheme in ("http", "https") else f"{bucket}/{key}".rstrip("/")


@contextlib.contextmanager
def remote_errors(url: str, what: str | None = "not found") -> Iterator[None]:
    """Turn a file system's error for ``url`` into one :class:`PssrError` line: ``what``
    (not found; with ``None`` a FileNotFoundError passes), access denied, or unreachable.
    A :class:`PssrError` passes unchanged."""
    try:
        yield
    except PssrError:
        raise
    except FileNotFoundError:
        if what is None:
            raise
        raise PssrError(f"{what}: {url}") from None
    except PermissionError:
        raise PssrError(f"access denied to {url} (check the credentials in the "
                        "environment)") from None
    except Exception as e:
        if not _is_connection_error(e):
            raise
        text = " ".join(str(e).split()) or type(e).__name__
        if is_timeout(e):
            text = (f"no answer within {network_timeout():g} s ({type(e).__name__}; "
                    f"{TIMEOUT_ENV} sets the seconds)")
        raise PssrError(f"cannot reach {url}: {text[:300]}") from None


def is_timeout(e: BaseException) -> bool:
    """Whether ``e`` is a request that timed out (asyncio, aiohttp, fsspec, botocore)."""
    return isinstance(e, TimeoutError) or "Timeout" in type(e).__name__


def _is_connection_error(e: BaseException) -> bool:
    """An error of the network or the store's client (not of the data read)."""
    module = type(e).__module__.split(".")[0]
    return isinstance(e, OSError | TimeoutError) or module in (
        "botocore", "aiobotocore", "aiohttp", "google", "gcsfs", "s3fs", "fsspec")
