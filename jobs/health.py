"""Is the site healthy? For load balancers, orchestrators and uptime checks (GET /health/).

Cheap enough to be asked every second: one database query and two Redis round trips.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection as database
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.job import Job
from rq.utils import as_text, utcparse

from jobs.enqueue import QUEUE_NAMES
from jobs.monitoring import STALE_AFTER

log = logging.getLogger(__name__)

# Past this wait for the oldest queued job, the site is degraded (still 200: it works, slowly).
SLOW_QUEUE_SECONDS = 600

_clients: dict[str, Redis] = {}


def _redis() -> Redis:
    """A client of its own with short timeouts: a Redis that does not answer must not hang the check."""
    url = settings.RQ_QUEUES[QUEUE_NAMES[0]]["URL"]
    if url not in _clients:
        _clients[url] = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    return _clients[url]


@dataclass
class Health:
    status: str = "ok"  # ok | degraded | down
    database: bool = False
    redis: bool = False
    workers: int = 0  # workers that beat their heartbeat within STALE_AFTER
    oldest_queued_seconds: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        return 503 if self.status == "down" else 200

    def as_dict(self) -> dict:
        return asdict(self)


def check() -> Health:
    health = Health(database=_database_answers())
    if not health.database:
        health.problems.append("database: unreachable")
    try:
        _check_queues(_redis(), health)
        health.redis = True
    except RedisError as exc:
        log.warning("health: Redis unavailable: %s", exc)
        health.problems.append("redis: unreachable")
    waiting = health.oldest_queued_seconds is not None
    if not health.database or not health.redis or (waiting and not health.workers):
        health.status = "down"
    elif health.problems:
        health.status = "degraded"
    return health


def _database_answers() -> bool:
    try:
        with database.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception as exc:  # any driver's error: the answer is "no"
        log.warning("health: database unavailable: %s", exc)
        return False


def _check_queues(redis: Redis, health: Health) -> None:
    worker_keys = [as_text(key) for key in redis.smembers(Worker.redis_workers_keys)]
    with redis.pipeline(transaction=False) as pipeline:
        for key in worker_keys:
            pipeline.hget(key, "last_heartbeat")
        for name in QUEUE_NAMES:
            pipeline.lindex(Queue(name, connection=redis).key, 0)
        found = pipeline.execute()
    beats, heads = found[: len(worker_keys)], found[len(worker_keys) :]
    now = datetime.now(UTC)
    health.workers = sum(1 for beat in beats if beat and now - utcparse(as_text(beat)) <= STALE_AFTER)
    stale = sum(1 for beat in beats if beat) - health.workers
    heads = [as_text(head) for head in heads if head]
    if heads:
        with redis.pipeline(transaction=False) as pipeline:
            for job_id in heads:
                pipeline.hget(Job.key_for(job_id), "enqueued_at")
            enqueued = [utcparse(as_text(at)) for at in pipeline.execute() if at]
        if enqueued:
            health.oldest_queued_seconds = round(max((now - at).total_seconds() for at in enqueued), 1)
    if not health.workers:
        health.problems.append(
            f"workers: none has beaten its heartbeat for {int(STALE_AFTER.total_seconds())} s"
            + (" while jobs wait" if health.oldest_queued_seconds is not None else "")
        )
    elif stale:
        health.problems.append(f"workers: {stale} stale")
    if (health.oldest_queued_seconds or 0) > SLOW_QUEUE_SECONDS:
        health.problems.append(f"queues: the oldest job has waited {health.oldest_queued_seconds:.0f} s")
