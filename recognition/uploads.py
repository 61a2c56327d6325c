"""Checks an uploaded file before it is stored: size, emptiness, and a readable image header."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from recognition import engine


class UploadRejected(Exception):
    """The upload cannot be accepted; status is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def check_upload(upload: UploadedFile | None) -> str:
    """Validate an uploaded image without decoding its pixels; returns its SHA-256."""
    if upload is None:
        raise UploadRejected("No file was sent: attach an image in the 'image' field.")
    if upload.size == 0:
        raise UploadRejected("The file is empty.")
    if upload.size > settings.PHOTO_MAX_BYTES:
        limit = settings.PHOTO_MAX_BYTES / (1024 * 1024)
        raise UploadRejected(f"The file is larger than the limit of {limit:.0f} MB.", status=413)
    upload.seek(0)
    try:
        engine.check_header(upload)
    except engine.UnreadableImage as exc:
        raise UploadRejected(f"This is not an image we can read: {exc}.") from exc
    upload.seek(0)
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def clean_name(name: str | None) -> str:
    """The original name, kept as data only: no folders, no control characters, at most 255 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[-255:] if len(name) > 255 else name
