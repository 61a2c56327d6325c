"""The gallery-change job: match stored face encodings against the current gallery, no detection.

What it finds is in earlier photos: one summary per person when the job is done, not a message per photo."""

from __future__ import annotations

from django.db import transaction
from rq import get_current_job

from alerts import dispatch
from jobs.enqueue import BULK
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
            created = photo.apply_matches(gallery, earlier=True)
            Photo.objects.filter(pk=photo.pk, rematch_pending=True).update(rematch_pending=False)
        count += 1
        alerts += len(created)
    job = get_current_job()
    if job is not None and job.origin == BULK:
        # `reprocess --rematch-only` runs many batches: one summary once the whole run is done.
        dispatch.schedule_earlier_summary(owner_id)
        return {"owner": owner_id, "photos": count, "alerts": alerts}
    summaries = dispatch.summarize_earlier(owner_id)
    return {"owner": owner_id, "photos": count, "alerts": alerts, "summaries": len(summaries)}
