"""Tensorstore key-value store specs for a folder: ``file``, ``s3``, ``gcs`` or ``http``.

Chunk data goes through tensorstore's kvstore drivers; everything else about object
storage goes through fsspec (:mod:`pssr_volume.io.filesystems`). Credentials and endpoints
come only from each store's standard environment (see :mod:`pssr_volume.urls`). The spec is
a plain dict: this module does not import tensorstore.
"""

from __future__ import annotations

import os
from typing import Any

from pssr_volume.urls import is_url, split


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


# tensorstore's retries of a failed request (its default, 32 up to 32 s apart, makes an
# unreachable store hang for many minutes)
_RETRIES = {"max_retries": 5, "initial_delay": "0.1s", "max_delay": "2s"}


def gcs_emulator() -> str | None:
    """The GCS emulator that ``STORAGE_EMULATOR_HOST`` names, as a URL (``host:port`` gets
    ``http://``, as gcsfs and Google's clients read it), or None."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").strip().rstrip("/")
    if host in ("", "default"):
        return None
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def _tensorstore_gcs_environment() -> None:
    """Point tensorstore's ``gcs`` driver at the emulator of ``STORAGE_EMULATOR_HOST``:
    tensorstore reads only its own ``TENSORSTORE_GCS_HTTP_URL`` (once, at its first GCS
    request in a process), and with ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` it sends that fixed
    token instead of looking up (and sending the emulator) real Google credentials, as
    Google's clients are anonymous with an emulator. What the user set is kept."""
    emulator = gcs_emulator()
    if emulator:
        os.environ.setdefault("TENSORSTORE_GCS_HTTP_URL", emulator)
        os.environ.setdefault("GOOGLE_AUTH_TOKEN_FOR_TESTING", "anonymous")


def _tensorstore_timeouts() -> None:
    """Bound tensorstore's HTTP requests (s3, gcs, http kvstores) as fsspec's are: a
    connection within 5 s, and a transfer that stalls (under one byte a second) for
    ``PSSR_VOLUME_NETWORK_TIMEOUT`` seconds fails (and is retried, :data:`_RETRIES`).
    tensorstore reads these once, at its first request in a process; what the user set
    is kept."""
    from pssr_volume.io.filesystems import CONNECT_TIMEOUT_S, network_timeout

    timeout = network_timeout()
    os.environ.setdefault("TENSORSTORE_CURL_CONNECT_TIMEOUT_SECONDS",
                          str(max(1, round(min(CONNECT_TIMEOUT_S, timeout)))))
    os.environ.setdefault("TENSORSTORE_CURL_LOW_SPEED_TIME_SECONDS", str(max(1, round(timeout))))
    os.environ.setdefault("TENSORSTORE_CURL_LOW_SPEED_LIMIT_BYTES", "1")


def kvstore_spec(location: str | os.PathLike[str]) -> dict[str, Any]:
    """A tensorstore kvstore spec for a folder: ``file``, ``s3``, ``gcs`` or ``http``."""
    if not is_url(location):
        return {"driver": "file", "path": os.fspath(location)}
    _tensorstore_timeouts()
    scheme, bucket, key = split(str(location))
    folder = f"{key}/" if key else ""
    if scheme == "http" or scheme == "https":
        return {"driver": "http", "base_url": str(location).rstrip("/") + "/"}
    if scheme == "gs":
        _tensorstore_gcs_environment()
        return {"driver": "gcs", "bucket": bucket, "path": folder,
                "context": {"gcs_request_retries": _RETRIES}}
    spec: dict[str, Any] = {
        "driver": "s3", "bucket": bucket, "path": folder, "aws_region": _region(),
        # "default" credentials print aws-c errors about ~/.aws/config on stderr
        "aws_credentials": {"type": "environment" if os.environ.get("AWS_ACCESS_KEY_ID")
                            else "default"},
        "context": {"s3_request_retries": _RETRIES},
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        spec["endpoint"] = endpoint
    return spec
