"""Where media lives: local disk or S3-compatible object storage (settings.MEDIA_STORAGE).

The one home for reading, writing, listing and serving stored files, so the rest of the code never asks
which backend is in use. Errors that mean "storage is down" (no connection, timeouts, 5xx) become
StorageUnavailable; a missing file stays FileNotFoundError.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage
from django.db import transaction

log = logging.getLogger(__name__)

# A job's copy of an original stays in memory up to this size, then spills to a temporary file.
SPOOL_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024


class StorageUnavailable(Exception):
    """Media storage cannot be reached right now; trying again later may work."""


def media_storage() -> Storage:
    return default_storage


def is_object_storage(storage: Storage | None = None) -> bool:
    return hasattr(storage or media_storage(), "bucket_name")


def _outage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    with contextlib.suppress(ImportError):
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError, Boto3Error]
    return tuple(errors)


def _is_missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


@contextlib.contextmanager
def reporting_outages(doing: str) -> Iterator[None]:
    """Turn a storage backend's connection errors into StorageUnavailable (a 404 into FileNotFoundError)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except _outage_errors() as exc:
        if _is_missing(exc):
            raise FileNotFoundError(f"not in storage: {exc}") from exc
        reason = f"{exc.__class__.__name__}: {exc}"
        raise StorageUnavailable(f"no answer from media storage while {doing} ({reason})") from exc


def save(name: str, data: bytes) -> str:
    """Store bytes under a name (random, made by the caller); returns the stored name."""
    with reporting_outages("saving a file"):
        return media_storage().save(name, ContentFile(data))


def delete(name: str) -> None:
    with reporting_outages("deleting a file"):
        media_storage().delete(name)


def delete_on_commit(names: list[str]) -> None:
    """Delete files once the rows that point to them are gone for good.

    Storage down then leaves them as orphans, which `manage.py media_check --fix` finds and deletes."""
    if not names:
        return

    def remove() -> None:
        for name in names:
            try:
                delete(name)
            except StorageUnavailable as exc:
                log.warning("left %s in storage for media_check --fix: %s", name, exc)

    transaction.on_commit(remove, robust=True)


@contextlib.contextmanager
def open_for_reading(name: str) -> Iterator[IO[bytes]]:
    """A seekable file of the stored bytes, for the decoder.

    On object storage this is one GET streamed into a spooled temporary file (memory up to SPOOL_BYTES,
    then disk, removed on close): no second request, no full copy kept in memory.
    """
    storage = media_storage()
    if not is_object_storage(storage):
        with storage.open(name, "rb") as local:
            yield local
        return
    with reporting_outages("reading a file"):
        body = storage.bucket.Object(storage._normalize_name(name)).get()["Body"]
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as copy:
        with reporting_outages("reading a file"), contextlib.closing(body):
            shutil.copyfileobj(body, copy, CHUNK_BYTES)
        copy.seek(0)
        yield copy


def read_bytes(name: str) -> bytes:
    """A small stored file (a rendition) whole."""
    with open_for_reading(name) as source:
        return source.read()


@dataclass
class Download:
    chunks: Iterator[bytes]
    size: int | None


def download(name: str) -> Download:
    """The stored bytes as chunks, for a streaming response; the file or stream closes when they end."""
    storage = media_storage()
    with reporting_outages("reading a file"):
        if is_object_storage(storage):
            answer = storage.bucket.Object(storage._normalize_name(name)).get()
            body, size = answer["Body"], answer.get("ContentLength")
        else:
            body, size = storage.open(name, "rb"), storage.size(name)
    return Download(_chunks(body), size)


def _chunks(body) -> Iterator[bytes]:
    try:
        while chunk := body.read(CHUNK_BYTES):
            yield chunk
    finally:
        body.close()


def presigned_url(name: str, content_type: str, filename: str | None = None) -> str | None:
    """A short-lived signed URL of the object (object storage only; None on local disk)."""
    storage = media_storage()
    if not is_object_storage(storage):
        return None
    parameters = {"ResponseContentType": content_type}
    if filename:
        parameters["ResponseContentDisposition"] = f'attachment; filename="{_header_safe(filename)}"'
    with reporting_outages("signing a URL"):
        return storage.url(name, parameters=parameters, expire=settings.MEDIA_REDIRECT_SECONDS)


def _header_safe(filename: str) -> str:
    return "".join(ch for ch in filename if ch.isascii() and ch.isprintable() and ch not in '"\\') or "photo"


@dataclass(frozen=True)
class StoredFile:
    name: str
    size: int
    modified: datetime


def walk(folder: str) -> Iterator[StoredFile]:
    """Every file stored under a top folder (photos, thumbs, ...), with its size and time."""
    storage = media_storage()
    with reporting_outages("listing files"):
        if is_object_storage(storage):
            yield from _walk_bucket(storage, folder)
        else:
            yield from _walk_disk(storage, folder)


def _walk_bucket(storage, folder: str) -> Iterator[StoredFile]:
    prefix = storage._normalize_name(folder).rstrip("/") + "/"
    strip = len(storage.location.strip("/")) + 1 if storage.location.strip("/") else 0
    for item in storage.bucket.objects.filter(Prefix=prefix):
        yield StoredFile(item.key[strip:], item.size, item.last_modified)


def _walk_disk(storage, folder: str) -> Iterator[StoredFile]:
    root = storage.path(folder)
    with contextlib.suppress(FileNotFoundError):
        for directory, _, files in os.walk(root):
            for filename in files:
                path = os.path.join(directory, filename)
                stat = os.stat(path)
                name = os.path.relpath(path, storage.location).replace(os.sep, "/")
                yield StoredFile(name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, tz=UTC))
