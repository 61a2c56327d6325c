"""Many photos as one zip, streamed: written as it is sent, never held whole in memory or on disk."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import PurePath

from django.utils import timezone

from recognition import storage
from recognition.models import Photo


class _Sink(io.RawIOBase):
    """A write-only, unseekable file: zipfile then writes data descriptors instead of seeking back."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def zip_name(photo: Photo, used: set[str]) -> str:
    """The photo's original name, made unique in the archive ("a.jpg", "a (2).jpg")."""
    name = photo.original_name or f"photo-{photo.pk}{PurePath(photo.image.name).suffix}"
    stem, suffix = PurePath(name).stem, PurePath(name).suffix
    candidate, number = name, 1
    while candidate.lower() in used:
        number += 1
        candidate = f"{stem} ({number}){suffix}"
    used.add(candidate.lower())
    return candidate


def zip_of(photos: Iterable[Photo]) -> Iterator[bytes]:
    """The originals of these photos as a zip, stored uncompressed (photos are compressed already)."""
    sink = _Sink()
    used: set[str] = set()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for photo in photos:
            when = timezone.localtime(photo.taken_at or photo.created_at)
            info = zipfile.ZipInfo(zip_name(photo, used), date_time=when.timetuple()[:6])
            try:
                chunks = storage.download(photo.image.name).chunks
            except FileNotFoundError:
                continue  # gone from storage: the rest still come
            with archive.open(info, mode="w", force_zip64=True) as target:
                for chunk in chunks:
                    target.write(chunk)
                    yield sink.take()
    yield sink.take()
