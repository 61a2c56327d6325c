"""Putting work on the queues. Jobs carry ids only; the database says what is to be done.

Queues: `high` for uploads, `default` for gallery changes, `alerts` for alert deliveries, `low` for
bulk reprocessing. Workers listen in that order, so bulk work never starves a user waiting on an
upload. Alerts come after the users' own work (a delivery job is short: its timeouts are seconds, so
a dead endpoint holds a worker briefly, and retries wait in RQ's scheduler, not in a worker), but
before bulk work, so a `reprocess --all` cannot hold alerts back. And each user has a fair share of
the uploads queue (admit_waiting), so one user's backlog never starves the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, Worker
from rq.job import Dependency, Job, JobStatus

from recognition.models import Photo, PhotoStatus, ReferencePhoto

log = logging.getLogger(__name__)

UPLOADS, GALLERY, ALERTS, BULK = "high", "default", "alerts", "low"
QUEUE_NAMES = (UPLOADS, GALLERY, ALERTS, BULK)


_connections: dict[str, Redis] = {}


def redis_connection(name: str = UPLOADS) -> Redis:
    """One Redis client (and connection pool) per URL and process, not a new connection per upload.

    redis-py notices a fork and gives the child fresh connections, so work horses may use it too.
    """
    url = settings.RQ_QUEUES[name]["URL"]
    if url not in _connections:
        _connections[url] = Redis.from_url(
            url, socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT, socket_timeout=settings.REDIS_SOCKET_TIMEOUT
        )
    return _connections[url]


def get_queue(name: str) -> Queue:
    # Enqueue at once: callers decide about transactions themselves (see enqueue_photo).
    return django_rq.get_queue(name, commit_mode="auto", connection=redis_connection(name))


def retry_policy() -> Retry:
    intervals = settings.JOB_RETRY_INTERVALS
    return Retry(max=len(intervals), interval=intervals)


def photo_job_id(photo_id: int) -> str:
    """One job id per photo, so a photo is never on the queues twice under different ids."""
    return f"photo-{photo_id}"


def queue_depth(name: str = UPLOADS) -> int:
    return get_queue(name).count


# Paused queues: RQ can only suspend whole workers, so FaceWorker skips the queues named in this set.
PAUSED_KEY = "photosite:paused-queues"


def paused_queues(connection=None) -> set[str]:
    connection = connection or get_queue(UPLOADS).connection
    return {name.decode() for name in connection.smembers(PAUSED_KEY)}


def pause_queue(name: str) -> None:
    """Workers stop taking jobs from this queue; its jobs stay where they are."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    get_queue(name).connection.sadd(PAUSED_KEY, name)


def resume_queue(name: str) -> None:
    get_queue(name).connection.srem(PAUSED_KEY, name)


def enqueue_photo(photo: Photo, queue: str = UPLOADS) -> None:
    """Queue a photo once its row is committed; when Redis cannot take it the photo is left WAITING.

    On the uploads queue a user past their fair share waits in the database instead (see admit_waiting)."""
    # A new run: attempts count the tries of this run (retries and lost jobs), not of the photo's life.
    fields = {"status": PhotoStatus.QUEUED, "queued_at": timezone.now(), "error": "", "attempts": 0, "queue": queue}
    Photo.objects.filter(pk=photo.pk).update(**fields)
    photo.status, photo.queue = PhotoStatus.QUEUED, queue

    def push() -> None:
        if queue == UPLOADS and _older_in_flight(photo) >= fair_share():
            _hold(photo.pk, FAIR_SHARE_WAIT)
            return
        _push(photo.pk, queue)

    transaction.on_commit(push)


QUEUE_FULL = "waiting: the queue is full, this photo is queued as the backlog drains"
REDIS_DOWN = "waiting: the job queue is unavailable, this photo will be processed later"
FAIR_SHARE_WAIT = "waiting: your earlier photos go first, this one is queued as they finish"


def _push(photo_id: int, queue: str) -> None:
    try:
        if queue == UPLOADS and queue_depth(UPLOADS) >= settings.QUEUE_MAX_DEPTH:
            _hold(photo_id, QUEUE_FULL)
            return
        _enqueue_photo_job(get_queue(queue), photo_id)
    except RedisError as exc:
        log.warning("Redis unavailable, photo %s waits in the database: %s", photo_id, exc)
        _hold(photo_id, REDIS_DOWN)


def _hold(photo_id: int, reason: str) -> None:
    Photo.objects.filter(pk=photo_id, status=PhotoStatus.QUEUED).update(status=PhotoStatus.WAITING, error=reason)


# Fair share of the workers. Each user has at most fair_share() uploads queued or processing; the next
# ones wait in the database, and each time one of the user's jobs ends, their oldest waiting photo goes
# on the uploads queue: at its back, behind everyone else's uploads. The queue so takes the users' photos
# in turns (a round robin), and one user's backlog of thousands costs another user a few photos' wait.
# Bulk and staff reprocessing run on their own queues, below uploads, and take nothing from a share.
IN_FLIGHT = {"status__in": (PhotoStatus.QUEUED, PhotoStatus.PROCESSING), "queue": UPLOADS}


def fair_share() -> int:
    """Photos a user may have queued or processing at once: FAIR_SHARE_JOBS, or one per running worker
    when there are more workers, so that one user alone still keeps every worker busy."""
    try:
        workers = Worker.count(connection=redis_connection(UPLOADS))
    except RedisError:
        workers = 0  # pragma: no mutate (any count up to FAIR_SHARE_JOBS, at least 1, gives the same share)
    return max(settings.FAIR_SHARE_JOBS, workers)


def _older_in_flight(photo: Photo) -> int:
    """The owner's photos in flight that came before this one: counting only older ones, uploads that
    arrive together can never all wait for each other."""
    in_flight = Photo.objects.filter(owner_id=photo.owner_id, **IN_FLIGHT, pk__lt=photo.pk)
    return in_flight.count()


def waiting_within_share(photo_ids: list[int]) -> set[int]:
    """Of these waiting photos, the ones each owner's share has room for now (oldest first)."""
    if not photo_ids:
        return set()
    share = fair_share()
    admitted: set[int] = set()
    waiting = Photo.objects.filter(pk__in=photo_ids, status=PhotoStatus.WAITING).order_by("pk")
    by_owner: dict[int, list[int]] = {}
    for pk, owner_id in waiting.values_list("pk", "owner_id"):
        by_owner.setdefault(owner_id, []).append(pk)
    for owner_id, ids in by_owner.items():
        room = share - Photo.objects.filter(owner_id=owner_id, **IN_FLIGHT).count()
        admitted.update(ids[: max(0, room)])
    return admitted


def admit_waiting(owner_id: int) -> int:
    """Queue the owner's oldest waiting photos, as many as their share has room for; returns how many.

    Called when one of their jobs ends or a photo of theirs is deleted; reconcile does the same for
    whatever this missed (a worker killed mid-job)."""
    waiting = Photo.objects.filter(owner_id=owner_id, status=PhotoStatus.WAITING).order_by("pk")
    if not waiting.exists():
        return 0
    room = fair_share() - Photo.objects.filter(owner_id=owner_id, **IN_FLIGHT).count()
    if room <= 0:  # pragma: no mutate (no room: the loop below would admit none either)
        return 0
    admitted = 0
    for photo_id in waiting.values_list("pk", flat=True)[:room]:
        # Two jobs of one user ending at once may pick the same photo: the update lets one of them have it.
        fields = {"status": PhotoStatus.QUEUED, "queued_at": timezone.now(), "error": "", "attempts": 0,
                  "queue": UPLOADS}  # fmt: skip
        if Photo.objects.filter(pk=photo_id, status=PhotoStatus.WAITING).update(**fields):
            _push(photo_id, UPLOADS)
            admitted += 1
    return admitted


def photo_job(photo_id: int, result_ttl: int = 3600) -> dict:
    """The options of a photo's job, for enqueue_call and prepare_data alike."""
    return {
        "func": "jobs.process_photo.process_photo",
        "args": (photo_id,),
        "job_id": photo_job_id(photo_id),
        "timeout": settings.JOB_TIMEOUT,
        "retry": retry_policy(),
        "result_ttl": result_ttl,
        "failure_ttl": 7 * 24 * 3600,
        "description": f"process photo {photo_id}",
        "meta": {"photo_id": photo_id},
    }


def _enqueue_photo_job(queue: Queue, photo_id: int) -> Job | None:
    """Queue the photo's job, unless it waits on this queue already (a second click): its id pushed twice
    would run the photo twice. Waiting on another queue, it moves here."""
    job_id = photo_job_id(photo_id)
    status, origin = queue.connection.hmget(Job.key_for(job_id), "status", "origin")
    if status == b"queued":
        if origin and origin.decode() == queue.name:
            return None
        if origin:
            Queue(origin.decode(), connection=queue.connection).remove(job_id)
    return queue.enqueue_call(**photo_job(photo_id))


def enqueue_photos(
    photo_ids: Iterable[int], queue: str = BULK, batch_size: int = 1000, new_run: bool = True
) -> Iterator[int]:
    """Queue many photos with Redis pipelines (enqueue_many); yields how many each batch queued.

    new_run=False (reconcile) keeps each photo's attempts, so a photo that keeps killing workers is given up.
    """
    rq_queue = get_queue(queue)
    batch: list[int] = []
    for photo_id in photo_ids:
        batch.append(photo_id)
        if len(batch) >= batch_size:
            yield _enqueue_batch(rq_queue, batch, new_run)
            batch = []
    if batch:
        yield _enqueue_batch(rq_queue, batch, new_run)


def _enqueue_batch(rq_queue: Queue, photo_ids: list[int], new_run: bool = True) -> int:
    fields = {"status": PhotoStatus.QUEUED, "queued_at": timezone.now(), "error": "", "queue": rq_queue.name}
    if new_run:
        fields["attempts"] = 0
    Photo.objects.filter(pk__in=photo_ids).update(**fields)
    # Bulk results are kept 5 minutes: the photo row is the record, Redis stays small.
    jobs = [Queue.prepare_data(**photo_job(photo_id, result_ttl=300)) for photo_id in photo_ids]  # pragma: no mutate
    rq_queue.enqueue_many(jobs)
    return len(photo_ids)


def reference_job_id(reference_id: int) -> str:
    return f"reference-{reference_id}"


REFERENCE_WAITING = "Stored, not lost: the job queue is unavailable, this photo will be encoded later."


def enqueue_reference(reference_id: int) -> None:
    """Queue a reference photo's encoding; with Redis down it waits (reconcile queues it later)."""

    def push() -> None:
        try:
            get_queue(GALLERY).enqueue_call(
                "jobs.encode_reference.encode_reference",
                args=(reference_id,),
                job_id=reference_job_id(reference_id),
                timeout=settings.JOB_TIMEOUT,
                retry=retry_policy(),
                description=f"encode reference {reference_id}",
            )
        except RedisError as exc:
            log.warning("Redis unavailable, reference %s waits in the database: %s", reference_id, exc)
            ReferencePhoto.objects.filter(pk=reference_id).update(error=REFERENCE_WAITING)

    transaction.on_commit(push)


def enqueue_rematch(owner_id: int, photo_ids: list[int] | None = None, queue: str = GALLERY) -> None:
    """Re-match stored encodings of a user's photos (all, or the ones given) without detecting again.

    The photos are marked rematch_pending until the job has matched them, so the gallery says
    "matching..." rather than showing names that are about to change.
    """
    photos = Photo.objects.filter(owner_id=owner_id, status=PhotoStatus.DONE)
    if photo_ids is not None:
        photos = photos.filter(pk__in=photo_ids)
    photos.filter(rematch_pending=False).update(rematch_pending=True)

    def push() -> None:
        try:
            get_queue(queue).enqueue_call(
                "jobs.rematch.rematch_faces",
                args=(owner_id, photo_ids),
                timeout=settings.JOB_TIMEOUT,
                retry=retry_policy(),
                description=f"re-match faces of user {owner_id}",
            )
        except RedisError as exc:
            # Redis down: the re-match waits for the next gallery change or `reprocess --rematch-only`.
            log.warning("Redis unavailable, re-match of user %s skipped: %s", owner_id, exc)
            photos.update(rematch_pending=False)

    transaction.on_commit(push, robust=True)  # pragma: no mutate (push catches what Redis raises)


def enqueue_rematch_many(batches: Iterable[tuple[int, list[int]]], queue: str = BULK) -> list[Job]:
    """Re-match many (owner id, photo ids) batches of stored encodings, with one Redis pipeline."""
    jobs = [
        Queue.prepare_data(
            "jobs.rematch.rematch_faces",
            args=(owner_id, photo_ids),
            timeout=settings.JOB_TIMEOUT,
            retry=retry_policy(),
            description=f"re-match faces of {len(photo_ids)} photos of user {owner_id}",
            meta={"owner_id": owner_id, "photos": len(photo_ids)},
        )
        for owner_id, photo_ids in batches
    ]
    return get_queue(queue).enqueue_many(jobs) if jobs else []


# Backfill of stored renditions (photos and references processed before the jobs made them): asked for
# by media views and `manage.py make_renditions`, at most once per object per RENDITIONS_PENDING_TTL.
RENDITIONS_PENDING_TTL = 600


def enqueue_renditions(kind: str, object_id: int) -> bool:
    """Queue the job that makes a photo's or reference's pictures (kind "photo" or "reference"), once.

    Returns False when one is pending already or Redis is down (a later request asks again)."""
    key = f"photosite:renditions:{kind}:{object_id}"
    try:
        connection = redis_connection(BULK)
        if not connection.set(key, 1, nx=True, ex=RENDITIONS_PENDING_TTL):  # pragma: no mutate (any value)
            return False
        get_queue(BULK).enqueue_call(
            f"jobs.make_renditions.make_{kind}_renditions",
            args=(object_id,),
            timeout=settings.JOB_TIMEOUT,
            retry=retry_policy(),
            description=f"make the pictures of {kind} {object_id}",
        )
    except RedisError as exc:
        log.warning("Redis unavailable, the pictures of %s %s are made later: %s", kind, object_id, exc)
        return False
    return True


def grouping_job_ids(owner_id: int) -> tuple[str, str]:
    """The owner's grouping job, and the one that waits for it when new faces arrive while it runs."""
    return f"group-faces-{owner_id}", f"group-faces-{owner_id}-next"


WAITING_STATUSES = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


def enqueue_grouping(owner_id: int) -> None:
    """Group the owner's new unknown faces: at most one pending run per owner, so 500 uploads make a few runs.

    A pending run (queued or deferred) will see every face committed before it starts: nothing to add.
    While one runs, the next waits for it (an RQ dependency); the job also takes a per-owner lock.
    """

    def push() -> None:
        queue = get_queue(GALLERY)
        ids = grouping_job_ids(owner_id)
        # The statuses alone, in one round trip: every photo job asks, and a run is pending nearly always.
        statuses = grouping_statuses(queue.connection, ids)
        if any(status in WAITING_STATUSES for status in statuses):
            return
        running_ids = [i for i, s in zip(ids, statuses, strict=True) if s == JobStatus.STARTED]  # pragma: no mutate
        free = [job_id for job_id in ids if job_id not in running_ids]
        if not free:  # both started: the second waits on the lock and will see these faces
            return
        running = [job for job in Job.fetch_many(running_ids, connection=queue.connection) if job]
        queue.enqueue_call(
            "jobs.group_faces.group_faces",
            args=(owner_id,),
            job_id=free[0],
            depends_on=Dependency(jobs=running, allow_failure=True) if running else None,
            timeout=settings.JOB_TIMEOUT,
            result_ttl=600,  # pragma: no mutate (a second more or less)
            description=f"group new faces of user {owner_id}",
            meta={"owner_id": owner_id},
        )

    # Redis down: the faces wait, unseen, for the next run (any new photo) or `manage.py group_faces`.
    transaction.on_commit(push, robust=True)


def grouping_statuses(connection: Redis, ids: tuple[str, ...]) -> list[str | None]:
    with connection.pipeline(transaction=False) as pipeline:  # pragma: no mutate (no MULTI needed)
        for job_id in ids:
            pipeline.hget(Job.key_for(job_id), "status")
        return [status.decode() if status else None for status in pipeline.execute()]


def enqueue_regrouping(owner_id: int, queue: str = BULK) -> Job:
    """Regroup every unknown face of the owner (bulk work: low queue); its progress is in job.meta."""
    return get_queue(queue).enqueue_call(
        "jobs.group_faces.regroup_faces",
        args=(owner_id,),
        job_id=f"regroup-faces-{owner_id}",
        timeout=max(settings.JOB_TIMEOUT, 3600),  # pragma: no mutate (a second more or less)
        result_ttl=3600,  # pragma: no mutate (a second more or less)
        description=f"regroup every unknown face of user {owner_id}",
        meta={"owner_id": owner_id, "progress": 0.0},
    )
