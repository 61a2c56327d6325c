"""The upload job: detect and encode the faces of one photo, match them, record alerts."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rq import get_current_job
from rq.timeouts import JobTimeoutException

from alerts import dispatch
from jobs import stats
from jobs.enqueue import BULK, admit_waiting, enqueue_grouping
from recognition import engine, storage
from recognition.matching import GALLERIES
from recognition.models import Photo, PhotoStatus, TakenAtSource

log = logging.getLogger(__name__)


def process_photo(photo_id: int) -> dict:
    """Idempotent: running it again replaces the photo's faces and keeps the user's decisions."""
    photo = Photo.objects.filter(pk=photo_id).first()
    if photo is None:
        return {"photo": photo_id, "skipped": "photo was deleted"}
    job = get_current_job()
    Photo.objects.filter(pk=photo_id).update(
        status=PhotoStatus.PROCESSING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
        job_id=job.id if job else "",
        error="",
    )
    try:
        # One GET from storage (any host's), spooled to a temporary file for the decoder.
        with storage.open_for_reading(photo.image.name) as source:
            began = time.process_time()
            analysis = engine.detect_faces(source)
            engine_cpu = time.process_time() - began
        store_results(photo, analysis, news=photo.processed_at is None and (job is None or job.origin != BULK))
    except engine.UnreadableImage as exc:
        fail_for_good(photo, f"Unreadable image: {exc}")
        raise
    except storage.StorageUnavailable as exc:
        fail_or_retry(photo, f"Storage unavailable: {exc}")
        raise
    except JobTimeoutException:
        fail_for_good(photo, f"Timed out: processing took longer than {settings.JOB_TIMEOUT} s")
        raise
    except Exception as exc:
        fail_or_retry(photo, f"{exc.__class__.__name__}: {exc}")
        raise
    finally:
        next_turn(photo.owner_id)
    stats.note_photo("done", faces=len(analysis.faces))
    # The engine's CPU time in the job's result: what the rest of the job and the queue cost is measured
    # against it, on the same photo at the same moment (benchmarks/servers.py).
    return {"photo": photo_id, "faces": len(analysis.faces), "engine_cpu_ms": round(engine_cpu * 1000, 1)}


def store_results(photo: Photo, analysis: engine.Analysis, news: bool = True) -> None:
    """Faces, matches and alerts in one transaction. Matches in a photo processed for the first time are
    news; on bulk reprocessing or a second run they are earlier photos, summarised, never sent one by one."""
    # The images pages show, made here from the decoded preview: a request never decodes an original.
    photo.store_renditions(analysis.preview)
    crops = photo.store_face_crops(analysis.preview, [face.box for face in analysis.faces], analysis.width)
    # The gallery is read (when not cached) before the transaction, which takes SQLite's write lock at once:
    # uploads do not wait while 100,000 references load. Inside, one query checks it is still current.
    loaded = GALLERIES.versioned(photo.owner_id)
    with transaction.atomic():
        photo.replace_faces(analysis, crops)
        alerts = photo.apply_matches(GALLERIES.recheck(photo.owner_id, loaded), earlier=not news)
        when = capture_date(photo, analysis)
        photo.mark(PhotoStatus.DONE, analysis.note, processed_at=timezone.now(), rematch_pending=False, **when)
        if news:
            dispatch.announce_news(alerts)
            dispatch.announce_someone_new(photo, photo.faces.filter(person__isnull=True).count())
        elif alerts:
            dispatch.schedule_earlier_summary(photo.owner_id)
    enqueue_grouping(photo.owner_id)


def capture_date(photo: Photo, analysis: engine.Analysis) -> dict:
    """taken_at from the camera (a time without offset is taken as TIME_ZONE's), else the upload time."""
    taken = analysis.taken_at
    if taken is None:
        return {"taken_at": photo.created_at, "taken_at_source": TakenAtSource.UPLOAD}
    if timezone.is_naive(taken):
        taken = timezone.make_aware(taken, timezone.get_default_timezone())
    return {"taken_at": taken, "taken_at_source": TakenAtSource.EXIF}


def next_turn(owner_id: int) -> None:
    """This job's end frees a place in the owner's fair share: their next waiting photo takes it."""
    try:
        admit_waiting(owner_id)
    except Exception:
        # Never fail the job for this: reconcile queues what is left waiting.
        log.exception("Could not queue the next waiting photo of user %s", owner_id)


def fail_for_good(photo: Photo, reason: str) -> None:
    """A failure no retry can mend: record it and tell RQ not to retry."""
    job = get_current_job()
    if job is not None:
        job.retries_left = 0
    photo.mark(PhotoStatus.FAILED, reason, processed_at=timezone.now())
    stats.note_photo("failed")
    log.warning("photo %s failed: %s", photo.pk, reason)


def fail_or_retry(photo: Photo, reason: str) -> None:
    job = get_current_job()
    if job is not None and job.retries_left:
        photo.mark(PhotoStatus.QUEUED, f"Retrying after a transient error: {reason}")
    else:
        photo.mark(PhotoStatus.FAILED, reason, processed_at=timezone.now())
        stats.note_photo("failed")
