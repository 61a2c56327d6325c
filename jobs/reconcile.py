"""Find photos whose job is gone and queue them again: the database, not Redis, says what is left to do.

A photo is lost when it is waiting (held back by backpressure or a Redis outage), or queued with no
live job in Redis (Redis restarted or flushed), or processing with no live job or past the job
timeout (a worker killed mid-job). Lost photos go back on the uploads queue as far as
QUEUE_MAX_DEPTH allows; the rest wait in the database for the next run. The worker runs this every
RECONCILE_INTERVAL seconds through RQ's scheduler; `manage.py reconcile` runs it by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from alerts.delivery import requeue_lost
from jobs.enqueue import (
    GALLERY,
    QUEUE_FULL,
    UPLOADS,
    enqueue_photos,
    enqueue_reference,
    get_queue,
    photo_job_id,
    queue_depth,
    reference_job_id,
    waiting_within_share,
)
from recognition.models import UNFINISHED, Photo, PhotoStatus, ReferencePhoto, ReferenceStatus

log = logging.getLogger(__name__)

SCHEDULED_JOB_ID = "reconcile"
# Job states in which a photo's job will still run, or is running.
LIVE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED}
# A photo queued this recently may be between its database update and its push to Redis.
DEFAULT_GRACE = 60
# Processing may run JOB_TIMEOUT seconds; past this margin on top, the job is surely dead.
PROCESSING_MARGIN = 60


@dataclass
class Outcome:
    checked: int = 0
    queued: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)  # lost, but the uploads queue is full: left waiting
    failed: list[int] = field(default_factory=list)  # lost mid-job too often: given up
    references: list[int] = field(default_factory=list)  # reference photos queued again
    deliveries: list[int] = field(default_factory=list)  # alert deliveries queued again
    recent: int = 0  # unfinished photos queued within the grace period, left alone
    grace: int = DEFAULT_GRACE

    def __str__(self) -> str:
        text = (
            f"checked {self.checked} unfinished photos: queued {len(self.queued)} again, "
            f"{len(self.held)} left waiting (queue full), {len(self.failed)} marked failed; "
            f"queued {len(self.references)} reference photos and {len(self.deliveries)} alert deliveries again"
        )
        if self.recent:
            text += (
                f"; left alone {self.recent} unfinished photo{'s' if self.recent != 1 else ''} queued within the "
                f"last {self.grace} s (their job may still be on its way to Redis; --grace 0 includes them)"
            )
        return text

    def as_dict(self) -> dict:
        return {
            "checked": self.checked,
            "queued": self.queued,
            "held": self.held,
            "failed": self.failed,
            "references": self.references,
            "deliveries": self.deliveries,
            "recent": self.recent,
        }


def max_attempts() -> int:
    return len(settings.JOB_RETRY_INTERVALS) + 1


def reconcile(grace: int = DEFAULT_GRACE, dry_run: bool = False) -> Outcome:
    """Queue again every unfinished photo whose job is gone; returns what it did."""
    outcome = Outcome(grace=grace, recent=_recently_queued(grace))
    lost: list[int] = []
    dead: list[int] = []
    waiting: list[int] = []
    for photo, status in _unfinished_with_job_status(grace):
        outcome.checked += 1
        if photo["status"] == PhotoStatus.WAITING and status not in LIVE:
            waiting.append(photo["id"])
        elif _is_lost(photo, status):
            # A photo that took its worker down again and again is not tried forever.
            if photo["status"] == PhotoStatus.PROCESSING and photo["attempts"] >= max_attempts():
                dead.append(photo["id"])
            else:
                lost.append(photo["id"])
    # Waiting photos keep their owner's fair share: the ones past it wait for the owner's jobs to end.
    admitted = waiting_within_share(waiting)
    lost = sorted(lost + [pk for pk in waiting if pk in admitted])
    room = max(0, settings.QUEUE_MAX_DEPTH - queue_depth(UPLOADS))
    outcome.queued, outcome.held, outcome.failed = lost[:room], lost[room:], dead
    if dry_run:
        return outcome
    if outcome.queued:
        sum(enqueue_photos(outcome.queued, queue=UPLOADS, new_run=False))
    # In chunks: SQLite refuses statements with more than 32,766 parameters.
    for chunk in chunks(outcome.held):
        Photo.objects.filter(pk__in=chunk).exclude(status=PhotoStatus.WAITING).update(
            status=PhotoStatus.WAITING, error=QUEUE_FULL, updated_at=timezone.now()
        )
    for chunk in chunks(outcome.failed):
        Photo.objects.filter(pk__in=chunk).update(
            status=PhotoStatus.FAILED,
            error=f"Gave up: the worker stopped mid-job {max_attempts()} times on this photo",
            processed_at=timezone.now(),
            updated_at=timezone.now(),
        )
    outcome.references = _lost_references(grace)
    if not dry_run:
        for reference_id in outcome.references:
            enqueue_reference(reference_id)
        outcome.deliveries = requeue_lost(grace)
    if outcome.queued or outcome.held or outcome.failed or outcome.references or outcome.deliveries:
        log.info("reconcile: %s", outcome)
    return outcome


def _lost_references(grace: int) -> list[int]:
    """Reference photos still waiting for their encoding whose job is gone."""
    cutoff = timezone.now() - timedelta(seconds=grace)
    waiting = list(
        ReferencePhoto.objects.filter(status=ReferenceStatus.QUEUED, updated_at__lt=cutoff).values_list("pk", flat=True)
    )
    if not waiting:
        return []
    with get_queue(GALLERY).connection.pipeline(transaction=False) as pipeline:  # pragma: no mutate (no MULTI needed)
        for reference_id in waiting:
            pipeline.hget(Job.key_for(reference_job_id(reference_id)), "status")
        statuses = pipeline.execute()
    answers = zip(waiting, statuses, strict=True)  # pragma: no mutate (a pipeline answers every command)
    return [pk for pk, status in answers if not status or status.decode() not in LIVE]


def chunks(ids: list[int], size: int = 1000) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _is_lost(photo: dict, job_status: str | None) -> bool:
    if photo["status"] in (PhotoStatus.WAITING, PhotoStatus.QUEUED):
        return job_status not in LIVE
    # Processing: a job waiting to run again (a retry) will run; a started one never runs past its
    # timeout, its work horse is killed first, so past that it is dead (its worker was killed).
    if job_status in LIVE - {JobStatus.STARTED}:
        return False
    if job_status != JobStatus.STARTED:
        return True
    deadline = timezone.now() - timedelta(seconds=settings.JOB_TIMEOUT + PROCESSING_MARGIN)
    return photo["started_at"] is None or photo["started_at"] < deadline


def _settled(grace: int) -> Q:
    """Unfinished photos past the grace period: a photo queued more recently may be on its way to Redis."""
    cutoff = timezone.now() - timedelta(seconds=grace)
    settled = Q(status__in=[PhotoStatus.WAITING, PhotoStatus.PROCESSING]) | Q(queued_at__lt=cutoff)
    return settled | Q(queued_at__isnull=True, created_at__lt=cutoff)


def _recently_queued(grace: int) -> int:
    return Photo.objects.filter(status__in=UNFINISHED).exclude(_settled(grace)).count() if grace > 0 else 0


def _unfinished_with_job_status(grace: int, batch_size: int = 1000) -> Iterator[tuple[dict, str | None]]:
    """Unfinished photos (oldest first) with the status of their job in Redis, None when it is gone."""
    photos = list(
        Photo.objects.filter(status__in=UNFINISHED)
        .filter(_settled(grace))
        .order_by("pk")
        .values("id", "status", "attempts", "started_at")
    )
    connection: Redis = get_queue(UPLOADS).connection
    for start in range(0, len(photos), batch_size):
        batch = photos[start : start + batch_size]
        with connection.pipeline(transaction=False) as pipeline:  # pragma: no mutate (no MULTI needed)
            for photo in batch:
                pipeline.hget(Job.key_for(photo_job_id(photo["id"])), "status")
            statuses = pipeline.execute()
        for photo, status in zip(batch, statuses, strict=True):  # pragma: no mutate (one status per command)
            yield photo, status.decode() if status else None


def run_scheduled() -> dict:
    """The job the worker's scheduler runs every RECONCILE_INTERVAL seconds."""
    return reconcile().as_dict()


def ensure_scheduled(connection: Redis) -> None:
    """Schedule the next reconcile run unless one is scheduled, queued or running already.

    The job is deleted when it finishes (result_ttl=0), so the next check schedules the one after;
    the fixed id keeps workers that check at the same time from scheduling two.
    """
    status = connection.hget(Job.key_for(SCHEDULED_JOB_ID), "status")
    queue = Queue(UPLOADS, connection=connection)
    next_run = time.time() + settings.RECONCILE_INTERVAL
    if status and status.decode() in LIVE:
        if status.decode() != JobStatus.SCHEDULED:
            return  # queued or running
        # Scheduled, unless lost from the registry or set further out by a process with a longer interval
        # (a shorter one, say for a test or after a settings change, takes effect at once).
        at = connection.zscore(queue.scheduled_job_registry.key, SCHEDULED_JOB_ID)
        if at is not None and at <= next_run:  # pragma: no mutate (two clocks never agree to the microsecond)
            return
    elif status:  # failed or stopped: the worker logged why; make room for the next run
        # Deleting the key, not fetch-then-delete: another worker may have deleted it a moment ago.
        connection.delete(Job.key_for(SCHEDULED_JOB_ID))
    queue.enqueue_in(
        timedelta(seconds=settings.RECONCILE_INTERVAL),
        "jobs.reconcile.run_scheduled",
        job_id=SCHEDULED_JOB_ID,
        result_ttl=0,
        failure_ttl=24 * 3600,
        job_timeout=settings.JOB_TIMEOUT,
        description="reconcile: queue again photos whose job is gone",
    )
