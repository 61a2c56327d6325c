"""The gallery-change job: match stored face encodings against the current gallery, no detection."""

from __future__ import annotations

from django.db import transaction

from jobs.enqueue import enqueue_alert_delivery
from recognition.matching import Gallery
from recognition.models import Photo, PhotoStatus


def rematch_faces(owner_id: int, photo_ids: list[int] | None = None, batch_size: int = 500) -> dict:
    gallery = Gallery.for_owner(owner_id)
    photos = Photo.objects.filter(owner_id=owner_id, status=PhotoStatus.DONE)
    if photo_ids is not None:
        photos = photos.filter(pk__in=photo_ids)
    count = alerts = 0
    for photo in photos.iterator(chunk_size=batch_size):
        with transaction.atomic():
            created = photo.apply_matches(gallery)
            Photo.objects.filter(pk=photo.pk, rematch_pending=True).update(rematch_pending=False)
        for alert in created:
            enqueue_alert_delivery(alert.pk)
        count += 1
        alerts += len(created)
    return {"owner": owner_id, "photos": count, "alerts": alerts}
