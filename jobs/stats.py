"""Figures the jobs keep in Redis, so that they add up across workers and hosts.

Each job, as it ends in its work horse, records with one script call (one round trip): its wait (enqueue
to start) and run time (start to end) in a histogram per queue, the faces a photo job found, and, in a
hash per minute that expires after a day, photos done and failed, waits per queue, and the depth of each
queue. `/metrics/` reads the histograms and totals; the Queues page charts the per-minute series.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis
from redis.commands.core import Script
from rq import Queue
from rq.job import Job

from jobs.enqueue import QUEUE_NAMES

WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, math.inf)
RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, math.inf)
SERIES_TTL = 25 * 3600  # a day of minutes, and an hour to spare
PREFIX = "photosite:stats"
TOTALS_KEY = f"{PREFIX}:totals"


def histogram_key(kind: str, queue: str) -> str:
    return f"{PREFIX}:{kind}:{queue}"


def minute_key(minute: int) -> str:
    return f"{PREFIX}:minute:{minute}"


def bucket(value: float, buckets: Sequence[float]) -> str:
    """The label of the first bucket that holds value (Prometheus' `le`)."""
    return label(next(le for le in buckets if value <= le))


def label(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(float(le))


# KEYS: wait histogram, run histogram, totals, this minute, the queues' lists.
# ARGV: wait bucket, wait, run bucket, run, queue, photo outcome or "", faces, ttl, the queues' names.
_RECORD = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBYFLOAT', KEYS[1], 'sum', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('HINCRBYFLOAT', KEYS[2], 'sum', ARGV[4])
redis.call('HINCRBY', KEYS[2], 'count', 1)
if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[6], 1) end
if tonumber(ARGV[7]) > 0 then redis.call('HINCRBY', KEYS[3], 'faces', ARGV[7]) end
redis.call('HINCRBY', KEYS[4], 'w:' .. ARGV[5] .. ':' .. ARGV[1], 1)
for i = 5, #KEYS do
  local depth = redis.call('LLEN', KEYS[i])
  local name = 'd:' .. ARGV[i + 4]
  if depth > tonumber(redis.call('HGET', KEYS[4], name) or '-1') then redis.call('HSET', KEYS[4], name, depth) end
end
redis.call('EXPIRE', KEYS[4], ARGV[8])
"""

# The depth part alone, for an idle worker to sample once a minute (no job ends while nothing runs).
_DEPTH = """
for i = 2, #KEYS do
  local depth = redis.call('LLEN', KEYS[i])
  local name = 'd:' .. ARGV[i]
  if depth > tonumber(redis.call('HGET', KEYS[1], name) or '-1') then redis.call('HSET', KEYS[1], name, depth) end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
"""

# What the running job says about its photo, picked up by record_job when the job ends.
_photo_note: dict[str, object] = {}


def note_photo(outcome: str | None, faces: int = 0) -> None:
    """Called by a photo job: its photo ended done or failed (None: neither, say a retry), with faces found."""
    _photo_note.update(outcome=outcome or "", faces=faces)


def clear_note() -> None:
    _photo_note.clear()


def record_job(connection: Redis, job: Job, queue: str, ended: float | None = None) -> None:
    """Record a job that ended (successfully or not): one script call."""
    ended = ended or time.time()
    started = job.started_at.timestamp() if job.started_at else ended
    wait = max(0.0, started - job.enqueued_at.timestamp()) if job.enqueued_at else 0.0
    run = max(0.0, ended - started)
    queues = _queue_keys()
    _script(connection, _RECORD)(
        keys=[histogram_key("wait", queue), histogram_key("run", queue), TOTALS_KEY, minute_key(int(ended // 60)),
              *queues.values()],
        args=[bucket(wait, WAIT_BUCKETS), wait, bucket(run, RUN_BUCKETS), run, queue,
              _photo_note.get("outcome", ""), _photo_note.get("faces", 0), SERIES_TTL, *queues],
    )  # fmt: skip
    clear_note()


def sample_depth(connection: Redis) -> None:
    queues = _queue_keys()
    minute = minute_key(int(time.time() // 60))
    _script(connection, _DEPTH)(keys=[minute, *queues.values()], args=[SERIES_TTL, *queues])


def _queue_keys() -> dict[str, str]:
    return {name: Queue.redis_queue_namespace_prefix + name for name in QUEUE_NAMES}


_scripts: dict[tuple[int, str], Script] = {}


def _script(connection: Redis, source: str) -> Script:
    """One Script per client: it runs as EVALSHA, loading itself once if Redis does not know it yet."""
    key = (id(connection), source)
    if key not in _scripts:
        _scripts[key] = connection.register_script(source)
    return _scripts[key]


@dataclass
class Histogram:
    buckets: list[tuple[str, int]]  # cumulative counts by `le`, as Prometheus wants them
    sum: float
    count: int


def histograms(connection: Redis, kind: str) -> dict[str, Histogram]:
    """The wait or run histogram of each queue."""
    bounds = WAIT_BUCKETS if kind == "wait" else RUN_BUCKETS
    with connection.pipeline(transaction=False) as pipeline:
        for name in QUEUE_NAMES:
            pipeline.hgetall(histogram_key(kind, name))
        found = pipeline.execute()
    result = {}
    for name, raw in zip(QUEUE_NAMES, found, strict=True):
        data = {k.decode(): v.decode() for k, v in raw.items()}
        cumulative, running = [], 0
        for le in bounds:
            running += int(data.get(label(le), 0))
            cumulative.append((label(le), running))
        result[name] = Histogram(cumulative, float(data.get("sum", 0)), int(data.get("count", 0)))
    return result


def faces_detected(connection: Redis) -> int:
    return int(connection.hget(TOTALS_KEY, "faces") or 0)


@dataclass
class Point:
    """One step of the series: photos done and failed in it, the deepest each queue was, the median wait."""

    start: datetime
    done: int = 0
    failed: int = 0
    depth: dict[str, int] = field(default_factory=dict)  # queues sampled in this step only
    median_wait: dict[str, float] = field(default_factory=dict)  # queues with a job started in this step

    @property
    def queued(self) -> int | None:
        return sum(self.depth.values()) if self.depth else None


def series(connection: Redis, minutes: int, step: int = 1, now: float | None = None) -> list[Point]:
    """The last `minutes` minutes in steps of `step` minutes, oldest first."""
    last = int((now or time.time()) // 60)
    first = last - minutes + 1
    first -= first % step  # steps start on round times (hh:00, hh:15, ...)
    with connection.pipeline(transaction=False) as pipeline:
        for minute in range(first, last + 1):
            pipeline.hgetall(minute_key(minute))
        hashes = pipeline.execute()
    points = []
    for offset in range(0, len(hashes), step):
        point = Point(start=datetime.fromtimestamp((first + offset) * 60, UTC))
        waits: dict[str, dict[str, int]] = {}
        for raw in hashes[offset : offset + step]:
            for key, value in raw.items():
                _add(point, waits, key.decode(), int(float(value)))
        point.median_wait = {queue: median(counts) for queue, counts in waits.items()}
        points.append(point)
    return points


def _add(point: Point, waits: dict[str, dict[str, int]], key: str, value: int) -> None:
    if key == "done":
        point.done += value
    elif key == "failed":
        point.failed += value
    elif key.startswith("d:"):
        queue = key[2:]
        point.depth[queue] = max(point.depth.get(queue, 0), value)
    elif key.startswith("w:"):
        queue, _, le = key[2:].partition(":")
        counts = waits.setdefault(queue, {})
        counts[le] = counts.get(le, 0) + value


def median(counts: dict[str, int]) -> float:
    """The median of bucketed waits, interpolated within its bucket as Prometheus' histogram_quantile does."""
    total = sum(counts.values())
    running, lower = 0, 0.0
    for le in WAIT_BUCKETS:
        in_bucket = counts.get(label(le), 0)
        if in_bucket and running + in_bucket >= total / 2:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (total / 2 - running) / in_bucket
        running += in_bucket
        lower = le
    return lower
