"""Rate limits counted in the site's Redis, so that every web process shares one count.

A limit is a sliding window: at most `count` hits for a key in any `period` seconds (a sorted set of
hit times per key, trimmed and counted by one Lua script, so two processes never both take the last
slot). When Redis cannot be reached the limit fails open for RATE_LIMIT_FAIL_OPEN seconds, so that
uploads and sign-ins keep working through a short outage; past that window each process counts alone
in its memory until Redis answers again (the limit then holds per process, not for the whole site).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass

from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400,
           "day": 86400}  # fmt: skip
RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")

# KEYS[1] the key; ARGV: now (ms), period (ms), count, a unique member. Returns 0 when the hit is
# taken, else the milliseconds until the oldest hit in the window leaves it.
HIT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, oldest[2] + ARGV[2] - ARGV[1])
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
"""
# How many hits are in the window now, without adding one.
COUNT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""


@dataclass(frozen=True)
class Rate:
    count: int
    period: int  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """'600/hour', '5/15m', '10/minute'; empty or '0/...' means no limit."""
        if not text:
            return None
        match = RATE.match(text.lower())
        if not match or match[3] not in PERIODS:
            raise ValueError(f"not a rate: {text!r} (write it like 600/hour or 5/15m)")
        count, multiple, unit = int(match[1]), int(match[2] or 1), PERIODS[match[3]]
        return cls(count, multiple * unit) if count else None


def wait_words(seconds: float) -> str:
    """'3 minutes', '1 hour': how long to wait, rounded up, for messages."""
    seconds = max(1, math.ceil(seconds))
    for size, unit in ((3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size or unit == "second":
            amount = math.ceil(seconds / size)
            return f"{amount} {unit}{'' if amount == 1 else 's'}"
    raise AssertionError("unreachable")


_clients: dict[str, Redis] = {}


def redis_client() -> Redis:
    """The site's Redis with short timeouts: a limit must not hold a request up when Redis is away."""
    url = settings.RQ_QUEUES["high"]["URL"]
    if url not in _clients:
        _clients[url] = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    return _clients[url]


class Outage:
    """When this process last found Redis unreachable; shared by every limit."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self) -> bool:
        """Note a failure; True while still inside the fail-open window."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning("Rate limits: Redis unreachable, failing open for %s s", settings.RATE_LIMIT_FAIL_OPEN)
        return now - self.since < settings.RATE_LIMIT_FAIL_OPEN

    def recovered(self) -> None:
        if self.since is not None:
            log.info("Rate limits: Redis answers again, counting there")
        self.since = None


outage = Outage()


class LocalWindows:
    """The same sliding windows in this process's memory: the fallback for a long Redis outage."""

    def __init__(self) -> None:
        self.hits: dict[str, deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()

    def hit(self, key: str, rate: Rate, add: bool = True) -> float:
        now = time.time()
        with self.lock:
            window = self.hits[key]
            while window and window[0] <= now - rate.period:
                window.popleft()
            if len(window) >= rate.count:
                return window[0] + rate.period - now
            if add:
                window.append(now)
            return 0.0

    def clear(self, key: str) -> None:
        with self.lock:
            self.hits.pop(key, None)


local = LocalWindows()


class Limit:
    """A named limit; `hit(key)` takes one slot, or says how many seconds until one is free."""

    def __init__(self, name: str, setting: str) -> None:
        self.name = name
        self.setting = setting  # read on each use, so that admins and tests can change it

    @property
    def rate(self) -> Rate | None:
        return Rate.parse(getattr(settings, self.setting))

    def redis_key(self, key: str) -> str:
        return f"photosite:limit:{self.name}:{key}"

    def hit(self, key: str) -> float:
        """Take a slot for key; returns 0 when taken, else the seconds to wait (nothing is taken)."""
        return self._run(key, add=True)

    def wait(self, key: str) -> float:
        """The seconds until key may hit again (0: it may now), without taking a slot."""
        return self._run(key, add=False)

    def clear(self, key: str) -> None:
        local.clear(self.redis_key(key))
        with contextlib.suppress(RedisError):
            redis_client().delete(self.redis_key(key))

    def _run(self, key: str, add: bool) -> float:
        rate = self.rate
        if rate is None:
            return 0.0
        full_key = self.redis_key(key)
        try:
            if add:
                result = redis_client().eval(
                    HIT_SCRIPT, 1, full_key, int(time.time() * 1000), rate.period * 1000, rate.count, uuid.uuid4().hex
                )
                wait = int(result) / 1000
            else:
                count = redis_client().eval(COUNT_SCRIPT, 1, full_key, int(time.time() * 1000), rate.period * 1000)
                wait = 0.0 if int(count) < rate.count else self._oldest_wait(full_key, rate)
        except RedisError as exc:
            if outage.failed():
                log.debug("Rate limit %s not counted (Redis unreachable: %s)", self.name, exc)
                return 0.0
            return local.hit(full_key, rate, add=add)
        outage.recovered()
        return wait

    def _oldest_wait(self, full_key: str, rate: Rate) -> float:
        oldest = redis_client().zrange(full_key, 0, 0, withscores=True)
        return max(1.0, oldest[0][1] / 1000 + rate.period - time.time()) if oldest else 0.0


UPLOADS = Limit("uploads", "UPLOAD_RATE_LIMIT")
