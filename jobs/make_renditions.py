"""The backfill job: make the stored pictures of a photo or reference processed before jobs made them.

It decodes the original once, as the upload job does, and never detects faces again.
"""

from __future__ import annotations

from django.conf import settings

from recognition import engine, storage
from recognition.models import Photo, ReferencePhoto


def _decoded(name: str):
    with storage.open_for_reading(name) as source:
        image, _, _ = engine.open_image(source, max_side=settings.FACES_DETECT_MAX_SIDE)
    return image


def make_photo_renditions(photo_id: int) -> dict:
    photo = Photo.objects.filter(pk=photo_id).first()
    if photo is None:
        return {"photo": photo_id, "skipped": "photo was deleted"}
    if photo.has_renditions() and photo.thumbnail:
        return {"photo": photo_id, "skipped": "already made"}
    image = _decoded(photo.image.name)
    photo.store_renditions(image)
    return {"photo": photo_id, "crops": photo.store_missing_crops(image)}


def make_reference_renditions(reference_id: int) -> dict:
    reference = ReferencePhoto.objects.filter(pk=reference_id).first()
    if reference is None or reference.thumbnail:
        return {"reference": reference_id, "skipped": "deleted or already made"}
    reference.store_thumbnail(_decoded(reference.image.name))
    return {"reference": reference_id}
