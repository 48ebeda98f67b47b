"""Object-storage URLs: which schemes are supported, and their syntax.

Inputs and outputs may be ``s3://bucket/key`` or ``gs://bucket/key`` (read and write), and
inputs also ``http://`` or ``https://`` (read only). Everything else that looks like a URL
(``ftp://``, ``foo://``) is refused with one line, before it could become a local folder
named ``s3:``. Credentials and endpoints come only from each store's standard environment:

* S3 (and S3-compatible stores): ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL`` (e.g. MinIO), ``AWS_REGION`` /
  ``AWS_DEFAULT_REGION`` (default ``us-east-1``), or ``~/.aws`` and instance roles;
* GCS: ``GOOGLE_APPLICATION_CREDENTIALS`` or the default credentials, and
  ``STORAGE_EMULATOR_HOST`` for an emulator (e.g. fake-gcs-server; then anonymous, and
  tensorstore is pointed at it too, see :func:`pssr_volume.io.kvstores.kvstore_spec`);
* HTTP(S): none (public data).

Chunk data goes through tensorstore's kvstore drivers (:func:`kvstore_spec`), everything
else through fsspec (:mod:`pssr_volume.io.filesystems`). This is a leaf module: it imports
nothing of the package, nor zarr or tensorstore (the spec is a plain dict).
"""

from __future__ import annotations

import re
from typing import Any

READ_SCHEMES = ("s3", "gs", "http", "https")
WRITE_SCHEMES = ("s3", "gs")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class Url(str):
    """A validated object-storage URL (``s3://b/k``): a ``str``, so it is never mistaken
    for a local :class:`~pathlib.Path` (which would collapse ``//``)."""

    __slots__ = ()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema  # only when a config model is built

        return core_schema.is_instance_schema(
            cls, serialization=core_schema.plain_serializer_function_ser_schema(str))



def scheme_of(text: object) -> str | None:
    """The lower-case scheme of ``text`` when it looks like a URL (``s3://...``), else None.
    A Windows drive (``C:\\x``) or a relative ``a:b`` is no URL."""
    match = _SCHEME.match(str(text)) if isinstance(text, str) else None
    return match.group(1).lower() if match else None


def is_url(location: object) -> bool:
    """Whether ``location`` is a URL (a :class:`Url`, or a string with a scheme)."""
    return isinstance(location, str) and scheme_of(location) is not None


def check_url(text: str, write: bool = False) -> Url:
    """``text`` as a :class:`Url` (trailing ``/`` dropped, ``gcs://`` spelled ``gs://``).

    Raises
    ------
    ValueError
        For a scheme that is not supported, a URL without a bucket or host, or a write to
        ``http(s)://`` (one line each).
    """
    scheme = scheme_of(text)
    if scheme is None:
        raise ValueError(f"{text} is not a URL")
    rest = text[len(scheme) + 3:].strip("/")
    if scheme == "gcs":
        scheme = "gs"
    if scheme not in READ_SCHEMES:
        raise ValueError(f"{text}: {scheme}:// URLs are not supported; use s3://, gs://, "
                         "http(s):// (inputs only) or a local path")
    if write and scheme not in WRITE_SCHEMES:
        raise ValueError(f"{text}: {scheme}:// is read-only; write outputs to s3://, gs:// "
                         "or a local path")
    if not rest or rest.startswith("/"):
        raise ValueError(f"{text}: the URL names no {'host' if 'http' in scheme else 'bucket'}")
    return Url(f"{scheme}://{rest}")


def split(url: str) -> tuple[str, str, str]:
    """``(scheme, bucket or host, key)`` of a URL (key without leading or trailing ``/``)."""
    scheme = scheme_of(url) or ""
    rest = url[len(scheme) + 3:]
    bucket, _, key = rest.partition("/")
    return ("gs" if scheme == "gcs" else scheme), bucket, key.strip("/")


def join(url: str, *parts: str) -> Url:
    """``url/part/...`` (empty parts skipped)."""
    names = [p.strip("/") for p in parts if p and p.strip("/")]
    return Url("/".join([url.rstrip("/"), *names]))


def parent(url: str) -> Url | None:
    """The URL one level up, or None at the bucket (or host) root."""
    scheme, bucket, key = split(url)
    if not key:
        return None
    return Url(f"{scheme}://{bucket}/{key.rpartition('/')[0]}".rstrip("/"))


def basename(url: str) -> str:
    """The last part of a URL's path (the bucket when it has none)."""
    _, bucket, key = split(url)
    return key.rpartition("/")[2] or bucket


def contains(outer: str, inner: str) -> bool:
    """Whether URL ``inner`` is ``outer`` or lies inside it."""
    a, b = str(outer).rstrip("/"), str(inner).rstrip("/")
    return a == b or b.startswith(a + "/")
