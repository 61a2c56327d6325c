"""What the queues and workers are doing, for staff: the Queues admin page and GET /api/queues/.

Also the actions on failed jobs. Requeueing a photo's job makes a fresh job (with its retries) and
puts the photo back to queued: the photo row, not the job, is the source of truth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import BaseRegistry

from jobs.enqueue import QUEUE_NAMES, enqueue_photos, get_queue, paused_queues
from recognition.models import UNFINISHED, Photo, PhotoStatus

# A FaceWorker beats at least every job monitoring interval (30 s) while busy and every few seconds
# while idle; three missed beats and it is probably gone.
STALE_AFTER = timedelta(seconds=90)


@dataclass
class QueueFigures:
    name: str
    paused: bool
    queued: int
    started: int
    deferred: int
    scheduled: int
    finished: int
    failed: int
    oldest_queued_seconds: float | None


@dataclass
class Throughput:
    """Photos finished lately, and when the backlog of unfinished photos empties at that rate."""

    done_last_5_min: int
    done_last_60_min: int
    failed_last_5_min: int
    failed_last_60_min: int
    backlog: int
    per_minute: float
    eta_seconds: float | None

    @property
    def eta(self) -> datetime | None:
        return None if self.eta_seconds is None else timezone.now() + timedelta(seconds=self.eta_seconds)


@dataclass
class WorkerInfo:
    name: str
    host: str
    pid: int | None
    state: str
    queues: list[str]
    current_job: str | None
    current_photo: int | None
    last_heartbeat: datetime | None
    stale: bool

    @property
    def heartbeat_age_seconds(self) -> int | None:
        return None if self.last_heartbeat is None else int((timezone.now() - self.last_heartbeat).total_seconds())


@dataclass
class FailedJob:
    id: str
    queue: str
    description: str
    photo_id: int | None
    photo_exists: bool
    owner: str
    exception_type: str
    exception_message: str
    traceback: str
    failed_at: datetime | None
    attempts: int


def connection() -> Redis:
    return get_queue(QUEUE_NAMES[0]).connection


def _count(registry: BaseRegistry) -> int:
    # No cleanup from a web request: the workers do that.
    return registry.get_job_count(cleanup=False)


def queue_figures() -> list[QueueFigures]:
    paused = paused_queues(connection())
    figures = []
    for name in QUEUE_NAMES:
        queue = get_queue(name)
        figures.append(
            QueueFigures(
                name=name,
                paused=name in paused,
                queued=queue.count,
                started=_count(queue.started_job_registry),
                deferred=_count(queue.deferred_job_registry),
                scheduled=_count(queue.scheduled_job_registry),
                finished=_count(queue.finished_job_registry),
                failed=_count(queue.failed_job_registry),
                oldest_queued_seconds=_oldest_queued_age(queue),
            )
        )
    return figures


def _oldest_queued_age(queue: Queue) -> float | None:
    """Age of the job at the head of the queue, the next one a worker takes."""
    head = queue.get_job_ids(0, 1)
    job = Job.fetch_many(head, connection=queue.connection)[0] if head else None
    if job is None or job.enqueued_at is None:
        return None
    return max(0.0, (timezone.now() - job.enqueued_at).total_seconds())


def throughput() -> Throughput:
    now = timezone.now()
    finished = Photo.objects.filter(processed_at__gte=now - timedelta(minutes=60)).aggregate(
        done_60=Count("pk", filter=Q(status=PhotoStatus.DONE)),
        failed_60=Count("pk", filter=Q(status=PhotoStatus.FAILED)),
        done_5=Count("pk", filter=Q(status=PhotoStatus.DONE, processed_at__gte=now - timedelta(minutes=5))),
        failed_5=Count("pk", filter=Q(status=PhotoStatus.FAILED, processed_at__gte=now - timedelta(minutes=5))),
    )
    backlog = Photo.objects.filter(status__in=UNFINISHED).count()
    # The last 5 minutes say the current rate best; the hour smooths it when those were quiet.
    per_minute = (finished["done_5"] + finished["failed_5"]) / 5
    if not per_minute:
        per_minute = (finished["done_60"] + finished["failed_60"]) / 60
    eta = backlog / per_minute * 60 if per_minute and backlog else (0.0 if not backlog else None)
    return Throughput(
        done_last_5_min=finished["done_5"],
        done_last_60_min=finished["done_60"],
        failed_last_5_min=finished["failed_5"],
        failed_last_60_min=finished["failed_60"],
        backlog=backlog,
        per_minute=round(per_minute, 2),
        eta_seconds=eta,
    )


def workers() -> list[WorkerInfo]:
    redis = connection()
    found = sorted(Worker.all(connection=redis), key=lambda worker: worker.name)
    current = {worker.name: worker.get_current_job_id() for worker in found}
    busy = [job_id for job_id in current.values() if job_id]
    jobs = dict(zip(busy, Job.fetch_many(busy, connection=redis), strict=True))
    now = timezone.now()
    return [
        WorkerInfo(
            name=worker.name,
            host=worker.hostname or "",
            pid=worker.pid,
            state=str(worker.get_state()),
            queues=worker.queue_names(),
            current_job=current[worker.name],
            current_photo=_photo_id(jobs.get(current[worker.name])),
            last_heartbeat=worker.last_heartbeat,
            stale=worker.last_heartbeat is None or now - worker.last_heartbeat > STALE_AFTER,
        )
        for worker in found
    ]


def _photo_id(job: Job | None) -> int | None:
    return job.meta.get("photo_id") if job is not None else None


def failed_jobs(limit: int = 100) -> list[FailedJob]:
    """The most recent failed jobs of every queue, with what their photo and its owner are."""
    jobs: list[tuple[str, Job]] = []
    for name in QUEUE_NAMES:
        registry = get_queue(name).failed_job_registry
        ids = registry.get_job_ids(0, limit - 1, desc=True, cleanup=False)
        jobs.extend((name, job) for job in Job.fetch_many(ids, connection=registry.connection) if job is not None)
    photo_ids = [pid for _, job in jobs if (pid := _photo_id(job)) is not None]
    photos = Photo.objects.select_related("owner").in_bulk(photo_ids)
    return sorted(
        (_failed_job(name, job, photos) for name, job in jobs),
        key=lambda failed: failed.failed_at or timezone.now(),
        reverse=True,
    )


def _failed_job(queue: str, job: Job, photos: dict[int, Photo]) -> FailedJob:
    result = job.latest_result()
    trace = (result.exc_string if result else None) or ""
    last_line = next((line for line in reversed(trace.strip().splitlines()) if line.strip()), "")
    exc_type, _, message = last_line.partition(": ")
    photo_id = _photo_id(job)
    photo = photos.get(photo_id) if photo_id is not None else None
    return FailedJob(
        id=job.id,
        queue=queue,
        description=job.description or job.func_name,
        photo_id=photo_id,
        photo_exists=photo is not None,
        owner=photo.owner.get_username() if photo else "",
        exception_type=exc_type.strip(),
        exception_message=message.strip(),
        traceback=trace,
        failed_at=job.ended_at or (result.created_at if result else None),
        attempts=photo.attempts if photo else len(job.results()),
    )


def requeue_failed(job_ids: list[str] | None = None) -> int:
    """Requeue these failed jobs (all of them when None); returns how many went back on a queue."""
    count = 0
    for name in QUEUE_NAMES:
        registry = get_queue(name).failed_job_registry
        ids = registry.get_job_ids(cleanup=False) if job_ids is None else [i for i in job_ids if i in registry]
        photo_ids: list[int] = []
        for job, job_id in zip(Job.fetch_many(ids, connection=registry.connection), ids, strict=True):
            if job is None:
                registry.remove(job_id)
            elif _photo_id(job) is not None:
                # A fresh job rather than RQ's requeue: it gets its retries back, and the photo its status.
                registry.remove(job, delete_job=True)
                photo_ids.append(_photo_id(job))
            else:
                registry.requeue(job)
                count += 1
        existing = list(Photo.objects.filter(pk__in=photo_ids).values_list("pk", flat=True))
        count += sum(enqueue_photos(existing, queue=name))
    return count


def delete_failed(job_ids: list[str] | None = None) -> int:
    """Delete these failed jobs (all of them when None); their photos stay failed."""
    count = 0
    for name in QUEUE_NAMES:
        registry = get_queue(name).failed_job_registry
        ids = registry.get_job_ids(cleanup=False) if job_ids is None else [i for i in job_ids if i in registry]
        for job, job_id in zip(Job.fetch_many(ids, connection=registry.connection), ids, strict=True):
            registry.remove(job if job is not None else job_id, delete_job=job is not None)
            count += 1
    return count


# The last `manage.py media_check`, for the Queues page: walking a bucket is too slow for a page view.
MEDIA_CHECK_KEY = "photosite:media-check"


def record_media_check(figures: dict) -> None:
    summary = {key: value for key, value in figures.items() if key not in ("missing", "orphans")}
    connection().set(MEDIA_CHECK_KEY, json.dumps(summary))


def media_check() -> dict | None:
    """The figures of the last media check, or None if it never ran."""
    stored = connection().get(MEDIA_CHECK_KEY)
    if stored is None:
        return None
    figures = json.loads(stored)
    figures["checked_at"] = datetime.fromisoformat(figures["checked_at"])
    return figures


def snapshot(failed_limit: int = 50) -> dict:
    """Every figure, as plain data for JSON."""
    figures = throughput()
    return {
        "queues": [asdict(queue) for queue in queue_figures()],
        "photos": {**asdict(figures), "eta": figures.eta.isoformat() if figures.eta else None},
        "workers": [
            {**asdict(w), "last_heartbeat": w.last_heartbeat.isoformat() if w.last_heartbeat else None}
            for w in workers()
        ],
        "failed_jobs": [
            {
                **{k: v for k, v in asdict(job).items() if k != "traceback"},
                "failed_at": job.failed_at.isoformat() if job.failed_at else None,
            }
            for job in failed_jobs(failed_limit)
        ],
        "media_check": {**media, "checked_at": media["checked_at"].isoformat()} if (media := media_check()) else None,
    }
