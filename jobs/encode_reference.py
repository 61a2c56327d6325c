"""The gallery job: encode a reference photo of a known person, then re-match the owner's photos.

A photo with several faces is not guessed at: it waits in CHOOSE until the user picks the face.
"""

from __future__ import annotations

from django.db import transaction
from rq import get_current_job

from jobs.enqueue import enqueue_rematch
from recognition import engine, storage
from recognition.models import ReferencePhoto, ReferenceStatus


def encode_reference(reference_id: int) -> dict:
    reference = ReferencePhoto.objects.select_related("person").filter(pk=reference_id).first()
    if reference is None:
        return {"reference": reference_id, "skipped": "reference was deleted"}
    try:
        with storage.open_for_reading(reference.image.name) as source:
            analysis = engine.detect_faces(source)
        reference.store_thumbnail(analysis.preview)  # shown even when no face is found
        found = engine.reference_faces(analysis)
    except engine.UnreadableImage as exc:
        job = get_current_job()
        if job is not None:
            job.retries_left = 0
        ReferencePhoto.objects.filter(pk=reference_id).update(status=ReferenceStatus.FAILED, error=str(exc))
        return {"reference": reference_id, "error": str(exc)}
    except Exception as exc:
        job = get_current_job()
        if job is None or not job.retries_left:  # the last try: say so, or reconcile would retry forever
            error = f"{exc.__class__.__name__}: {exc}"
            ReferencePhoto.objects.filter(pk=reference_id).update(status=ReferenceStatus.FAILED, error=error)
        raise
    with transaction.atomic():
        reference.store_faces(found, analysis.width, note=analysis.note)
        if reference.status == ReferenceStatus.DONE:
            enqueue_rematch(reference.person.owner_id)
    return {"reference": reference_id, "status": reference.status, "faces": [f.box.as_dict() for f in found]}
