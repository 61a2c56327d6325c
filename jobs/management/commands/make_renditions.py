"""Queue the jobs that make the stored pictures of photos and references processed before jobs made them."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db.models import Q

from jobs.enqueue import enqueue_renditions
from recognition.models import Photo, PhotoStatus, ReferencePhoto, ReferenceStatus


def photos_missing_pictures():
    missing = Q(web_image="") | Q(thumbnail="") | Q(faces__crop="")
    return Photo.objects.filter(missing, status=PhotoStatus.DONE).values_list("pk", flat=True).distinct()


def references_missing_pictures():
    finished = ReferencePhoto.objects.exclude(status=ReferenceStatus.QUEUED)
    return finished.filter(thumbnail="").values_list("pk", flat=True)


class Command(BaseCommand):
    help = (
        "Queue a job (low queue) for each processed photo without its web image, thumbnail or face crops, "
        "and each reference photo without its thumbnail. Media requests never make them; they ask too."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count them, queue nothing")

    def handle(self, *args, dry_run: bool, **options) -> None:
        photos, references = list(photos_missing_pictures()), list(references_missing_pictures())
        if dry_run:
            self.stdout.write(f"Dry run: {len(photos)} photos and {len(references)} references lack pictures.")
            return
        queued = sum(enqueue_renditions("photo", pk) for pk in photos)
        queued += sum(enqueue_renditions("reference", pk) for pk in references)
        self.stdout.write(
            f"{len(photos)} photos and {len(references)} references lack pictures; queued {queued} jobs "
            "(the others were queued already)."
        )
