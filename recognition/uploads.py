"""Checks an uploaded file before it is stored: size, emptiness, and a readable image header."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat

from recognition import engine, limits

# Room for the multipart boundaries and headers around the file in a request body.
MULTIPART_OVERHEAD = 64 * 1024


class UploadRejected(Exception):
    """The upload cannot be accepted; status is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after  # seconds, for a Retry-After header


def too_large() -> UploadRejected:
    return UploadRejected(f"The file is larger than the limit of {size_words(settings.PHOTO_MAX_BYTES)}.", status=413)


def check_content_length(meta: Mapping[str, str]) -> None:
    """Refuse a body that cannot hold an acceptable photo before a byte of it is read."""
    declared = meta.get("CONTENT_LENGTH")
    if not declared:
        return  # no length given (a chunked body): check_upload checks the file itself
    try:
        length = int(declared)
    except ValueError:
        raise UploadRejected("The request has an invalid Content-Length.") from None
    if length > settings.PHOTO_MAX_BYTES + MULTIPART_OVERHEAD:
        raise UploadRejected(
            f"The upload is larger than the limit of {size_words(settings.PHOTO_MAX_BYTES)}: nothing was stored.",
            status=413,
        )


class RefuseLargeBodiesMiddleware:
    """Every way in (API, gallery and people forms, admin): a POST body too large for one photo is
    refused from its Content-Length, before a byte is read. Placed after the auth middleware, whose work
    is lazy; CSRF checking (which reads the body) runs later, in process_view."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                check_content_length(request.META)
            except UploadRejected as exc:
                return self.refuse(request, exc)
        return self.get_response(request)

    def refuse(self, request: HttpRequest, exc: UploadRejected) -> HttpResponse:
        if request.path.startswith("/api/") or "html" not in request.headers.get("Accept", ""):
            return JsonResponse({"error": exc.message}, status=exc.status)
        return render(request, "recognition/too_large.html", {"message": exc.message}, status=exc.status)


def check_rate(owner_id: int) -> None:
    """Take one of the owner's uploads (settings.UPLOAD_RATE_LIMIT, shared by every web process)."""
    wait = limits.UPLOADS.hit(str(owner_id))
    if wait:
        raise UploadRejected(
            f"Too many uploads: the limit is {settings.UPLOAD_RATE_LIMIT}. Try again in {limits.wait_words(wait)}.",
            status=429,
            retry_after=wait,
        )


def check_quota(used_bytes: int, size: int) -> None:
    """Refuse a file that would take the owner past settings.USER_QUOTA_BYTES (0: no quota)."""
    quota = settings.USER_QUOTA_BYTES
    if quota and used_bytes + size > quota:
        raise UploadRejected(
            f"Your storage is full: {size_words(used_bytes)} of {size_words(quota)} used, and this file needs "
            f"{size_words(size)}. Delete some photos to make room.",
            status=403,
        )


def size_words(size: int) -> str:
    return filesizeformat(size).replace("\xa0", " ")


def check_upload(upload: UploadedFile | None) -> str:
    """Validate an uploaded image without decoding its pixels; returns its SHA-256."""
    if upload is None:
        raise UploadRejected("No file was sent: attach an image in the 'image' field.")
    if upload.size == 0:
        raise UploadRejected("The file is empty.")
    if upload.size > settings.PHOTO_MAX_BYTES:
        raise too_large()
    upload.seek(0)  # pragma: no mutate (equivalent: Pillow's open seeks to 0 itself)
    try:
        engine.check_header(upload)
    except engine.UnreadableImage as exc:
        raise UploadRejected(f"This is not an image we can read: {exc}.") from exc
    upload.seek(0)  # pragma: no mutate (equivalent: chunks() seeks to 0 itself)
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)  # pragma: no mutate (equivalent: the storage's save reads through chunks() too)
    return digest.hexdigest()


def clean_name(name: str | None) -> str:
    """The original name, kept as data only: no folders, no control characters, at most 255 characters.

    A long name keeps its end, where the extension is.
    """
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]  # pragma: no mutate (any count: the same last part)
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[-255:]
