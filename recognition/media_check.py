"""Compare the media rows with the stored files: rows whose file is missing, files no row points to.

Used by `manage.py media_check` (dry run by default; --fix deletes orphans). A file younger than
min_age is never called an orphan: an upload stores its file a moment before its row is committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from recognition import storage
from recognition.models import MEDIA_FOLDERS, Face, Photo, ReferencePhoto

DEFAULT_MIN_AGE = 3600


@dataclass
class MediaReport:
    checked_at: datetime
    referenced: int = 0  # file names the rows point to
    files: int = 0  # files found in storage
    bytes: int = 0
    missing: list[str] = field(default_factory=list)  # "photo 12 thumbnail: thumbs/ab/....jpg"
    orphans: list[str] = field(default_factory=list)
    orphan_bytes: int = 0
    too_young: int = 0  # unreferenced files younger than min_age, left alone
    deleted: int = 0

    def as_dict(self) -> dict:
        figures = asdict(self)
        figures["checked_at"] = self.checked_at.isoformat()
        figures["missing_count"], figures["orphan_count"] = len(self.missing), len(self.orphans)
        return figures


def referenced_names() -> dict[str, str]:
    """Every stored name a row points to, with what points to it."""
    names: dict[str, str] = {}
    sources = [
        (Photo.objects.all(), "photo", ("image", "thumbnail", "web_image")),
        (Face.objects.exclude(crop=""), "face", ("crop",)),
        (ReferencePhoto.objects.all(), "reference", ("image", "thumbnail")),
    ]
    for queryset, kind, fields in sources:
        for row in queryset.values_list("pk", *fields).iterator(chunk_size=2000):
            for field_name, name in zip(fields, row[1:], strict=True):
                if name:
                    names[name] = f"{kind} {row[0]} {field_name}"
    return names


def stored_files() -> Iterator[storage.StoredFile]:
    for folder in MEDIA_FOLDERS:
        yield from storage.walk(folder)


def check_media(
    fix: bool = False, min_age: int = DEFAULT_MIN_AGE, progress: Callable[[int], None] = lambda n: None
) -> MediaReport:
    """Walk the storage once; with fix, delete the orphans (never a row, never a young file)."""
    report = MediaReport(checked_at=timezone.now())
    referenced = referenced_names()
    report.referenced = len(referenced)
    seen: set[str] = set()
    cutoff = report.checked_at - timedelta(seconds=min_age)
    orphans: list[str] = []
    for stored in stored_files():
        report.files += 1
        report.bytes += stored.size
        progress(1)
        if stored.name in referenced:
            seen.add(stored.name)
        elif stored.modified > cutoff:
            report.too_young += 1
        else:
            orphans.append(stored.name)
            report.orphan_bytes += stored.size
    report.orphans = orphans
    report.missing = [f"{what}: {name}" for name, what in referenced.items() if name not in seen]
    if fix:
        for name in orphans:
            storage.delete(name)
            report.deleted += 1
    return report
