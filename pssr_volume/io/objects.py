"""Small objects in object storage: atomic create, conditional replace, listing.

What the lease (:mod:`pssr_volume.io.lease`) and the journal (:mod:`pssr_volume.io.journal`) need
from an ``s3://`` or ``gs://`` output, which has no ``O_EXCL``, no rename and no append:

* :func:`create` writes an object only if none exists, atomically, in one request: on S3 a
  conditional put (``If-None-Match: *``, honoured by AWS S3 since 2024, MinIO and moto), on
  GCS an upload with the precondition ``ifGenerationMatch=0`` (gcsfs's ``mode="create"``);
* :func:`replace` overwrites an object only if it is still the version that was read,
  atomically: on S3 a conditional put (``If-Match: <ETag>``), on GCS an upload with
  ``ifGenerationMatch=<generation>``; the store refuses the loser (HTTP 412);
* :func:`names`, :func:`read_all` and :func:`delete_tree` list, read and delete the objects
  under a prefix; a put is atomic, so no reader ever sees a torn object.

Errors other than "not found" and "precondition failed" propagate (the callers turn them
into one line).
"""

from __future__ import annotations

import contextlib
import datetime
import json
from typing import Any

from pssr_volume.io.filesystems import filesystem, fs_path
from pssr_volume.urls import split


def _fs(url: str) -> tuple[Any, str]:
    return filesystem(url), fs_path(url)


def _version(info: dict[str, Any]) -> str:
    value = info.get("ETag") or info.get("generation") or info.get("etag") or ""
    return str(value)


def _modified(info: dict[str, Any]) -> float:
    value = info.get("LastModified") or info.get("updated") or info.get("mtime")
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value) if isinstance(value, int | float) else 0.0


def _precondition_failed(e: BaseException) -> bool:
    text = str(e).lower()
    return "pre-condition" in text or "precondition" in text or "412" in text


def read(url: str) -> tuple[bytes, str, float] | None:
    """An object's bytes, version (ETag or generation) and modification time; ``None``
    when it does not exist."""
    fs, path = _fs(url)
    try:
        info = fs.info(path)
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    return bytes(data), _version(info), _modified(info)


def _written(fs: Any, path: str, response: Any) -> str:
    if isinstance(response, dict) and (response.get("ETag") or response.get("generation")):
        return _version(response)  # S3's ETag, or the GCS object resource's generation
    return _version(fs.info(path))


def _gcs_put_if(fs: Any, path: str, data: bytes, generation: str) -> Any:
    """Upload ``data`` to ``bucket/key`` in one request if the object is at ``generation``
    (GCS's precondition: 412, gcsfs's FileExistsError, when it is not); the new object's
    resource. gcsfs's own single-request upload (multipart: metadata, then the bytes), with
    the precondition that its ``mode="create"`` sets to 0 set to ``generation``."""
    from urllib.parse import quote

    bucket, _, key = path.partition("/")
    head = (f'--==0==\nContent-Type: application/json; charset=UTF-8\n\n{json.dumps({"name": key})}'
            "\n--==0==\nContent-Type: application/octet-stream\n\n")
    return fs.call("POST", f"{fs._location}/upload/storage/v1/b/{quote(bucket, safe='')}/o",
                   uploadType="multipart", ifGenerationMatch=generation,
                   headers={"Content-Type": 'multipart/related; boundary="==0=="'},
                   data=head.encode() + data + b"\n--==0==--", json_out=True)


def create(url: str, data: bytes) -> str | None:
    """Write ``data`` to ``url`` if no object is there; its version, or ``None`` when one
    exists already."""
    fs, path = _fs(url)
    try:
        return _written(fs, path, fs.pipe_file(path, data, mode="create"))
    except FileExistsError:
        return None
    except OSError as e:
        if _precondition_failed(e):
            return None
        raise


def replace(url: str, data: bytes, version: str) -> str | None:
    """Overwrite ``url`` with ``data`` if it is still at ``version``; the new version, or
    ``None`` when it changed (or went) meanwhile."""
    fs, path = _fs(url)
    try:
        if split(url)[0] == "gs":
            return _written(fs, path, _gcs_put_if(fs, path, data, version))
        return _written(fs, path, fs.pipe_file(path, data, IfMatch=version))
    except (FileNotFoundError, FileExistsError):  # gone, or another version (GCS 412)
        return None
    except OSError as e:
        if _precondition_failed(e):
            return None
        raise


def write(url: str, data: bytes) -> None:
    """Write (or overwrite) the object ``url``."""
    fs, path = _fs(url)
    fs.pipe_file(path, data)


def delete(url: str) -> None:
    """Delete the object ``url`` (nothing when it does not exist)."""
    fs, path = _fs(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def names(prefix: str) -> list[str]:
    """The objects below the folder ``prefix``, relative to it, sorted."""
    fs, path = _fs(prefix)
    try:
        found = fs.find(path)
    except FileNotFoundError:
        return []
    base = path.rstrip("/") + "/"
    return sorted(f[len(base):] for f in found if f.startswith(base))


def read_all(prefix: str, wanted: list[str]) -> dict[str, bytes]:
    """The bytes of the objects ``wanted`` (names relative to ``prefix``), read
    concurrently; objects that went meanwhile are left out."""
    if not wanted:
        return {}
    fs, path = _fs(prefix)
    base = path.rstrip("/") + "/"
    got = fs.cat([base + n for n in wanted], on_error="omit")
    return {k[len(base):]: bytes(v) for k, v in got.items() if isinstance(v, bytes | bytearray)}


def delete_tree(prefix: str) -> None:
    """Delete every object below the folder ``prefix``."""
    fs, path = _fs(prefix)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path.rstrip("/") + "/", recursive=True)
