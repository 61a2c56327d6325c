"""After a crash: give the scheduler lock of a dead scheduler back, and retry the jobs of dead workers.

RQ's worker takes the scheduler lock when it starts. When a crash left the lock with a scheduler that is
gone, the lock expires about 61 s later, but RQ tries again only in its maintenance pass, every 10
minutes: past-due retries and the scheduled reconcile sit in Redis meanwhile. Likewise a job whose worker
was killed stays "started" until RQ's maintenance notices it. FaceWorker calls `keep_scheduler_running`
and `retry_jobs_of_dead_workers` every few seconds instead.

A holder is known dead when its process is gone from this machine, or when it has not refreshed its
lease for STALE_LOCK seconds. "This machine" is the host name and the pid namespace (`HOST_FIELD`, which
our workers and schedulers add to their hash in Redis), so that two containers that share a host name do
not take each other's processes for dead; a worker without that field is left to RQ's own expiry.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil
from redis import Redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.utils import as_text, utcparse

from jobs.supervisor import die_with_parent

log = logging.getLogger(__name__)

# RQ's scheduler refreshes its lock every second; a lease this many seconds old has no live holder.
STALE_LOCK = 15
LAST_MOVED_KEY = "photosite:scheduler:last-moved"
HOST_FIELD = "photosite_host"


@functools.cache
def host_id() -> str:
    """This machine and pid namespace: where a pid means the same process."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/{namespace}"


class Scheduler(RQScheduler):
    """RQ's scheduler, which goes with its worker and notes when it last moved a job to a queue."""

    def work(self) -> None:
        die_with_parent(signal.SIGKILL)  # a scheduler outliving its worker would hold the lock for nothing
        super().work()

    def register_birth(self) -> None:
        super().register_birth()
        self.connection.hset(self.key, HOST_FIELD, host_id())

    def enqueue_scheduled_jobs(self) -> None:
        if not self._scheduled_job_registries and self._acquired_locks:
            self.prepare_registries()
        due = sum(len(registry.get_jobs_to_schedule(time.time())) for registry in self._scheduled_job_registries)
        super().enqueue_scheduled_jobs()
        if due:
            self.connection.hset(LAST_MOVED_KEY, mapping={"at": time.time(), "jobs": due, "scheduler": self.name})


def _process_gone(pid: int, alive_at: datetime | None) -> bool:
    """Whether pid (on this machine) is not the process that was alive at alive_at (it died, or was reused)."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    return alive_at is not None and started > alive_at.timestamp()


def _dead_here(data: dict[str, str]) -> bool:
    """Whether the worker or scheduler this hash describes ran on this machine and its process is gone."""
    if data.get(HOST_FIELD) != host_id() or not data.get("pid", "").isdigit() or int(data["pid"]) <= 0:
        return False
    heartbeat = utcparse(data["last_heartbeat"]) if data.get("last_heartbeat") else None
    return _process_gone(int(data["pid"]), heartbeat)


def _decoded(raw: dict) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in raw.items()}


def _scheduler_dead(connection: Redis, holder: str, lease_left: int, lease: int) -> bool:
    if lease_left >= 0 and lease - lease_left > STALE_LOCK:
        return True
    return _dead_here(_decoded(connection.hgetall(SCHEDULER_KEY_TEMPLATE % holder)))


def release_dead_scheduler_locks(connection: Redis, queue_names: list[str], lease: int = 61) -> list[str]:
    """Release the scheduler locks of these queues whose holder is dead; returns the queues freed."""
    freed = []
    for name in queue_names:
        key = RQScheduler.get_locking_key(name)
        holder = connection.get(key)
        if holder is None or not _scheduler_dead(connection, as_text(holder), connection.ttl(key), lease):
            continue
        if release_lock(connection, key, as_text(holder)):  # only if it is still that holder's
            log.warning("Released the scheduler lock of queue %s: its scheduler %s is dead", name, as_text(holder))
            freed.append(name)
    return freed


def keep_scheduler_running(worker: Worker) -> None:
    """Start the worker's scheduler when no live one holds the locks (RQ itself retries every 10 minutes)."""
    scheduler = worker.scheduler
    if scheduler is None or (scheduler._process is not None and scheduler._process.is_alive()):
        return
    release_dead_scheduler_locks(worker.connection, sorted(scheduler._queue_names), scheduler.interval + 60)
    scheduler.acquire_locks(auto_start=True)


def mark_host(worker: Worker) -> None:
    """Called when a worker is born: note which machine it runs on, in its own hash (gone with it)."""
    worker.connection.hset(worker.key, HOST_FIELD, host_id())


def _dead_workers(connection: Redis) -> list[str]:
    """Names of the registered workers that ran on this machine and whose process is gone (two round trips)."""
    keys = sorted(as_text(key) for key in connection.smembers(Worker.redis_workers_keys))
    with connection.pipeline(transaction=False) as pipeline:
        for key in keys:
            pipeline.hmget(key, [HOST_FIELD, "pid", "last_heartbeat"])
        found = pipeline.execute()
    dead = []
    for key, (host, pid, heartbeat) in zip(keys, found, strict=True):
        data = {
            HOST_FIELD: as_text(host or b""),
            "pid": as_text(pid or b""),
            "last_heartbeat": as_text(heartbeat or b""),
        }
        if _dead_here(data):
            dead.append(key.removeprefix(Worker.redis_worker_namespace_prefix))
    return dead


def retry_jobs_of_dead_workers(connection: Redis, queue_names: list[str]) -> int:
    """Jobs started by a worker of this machine whose process is gone are retried now, not minutes later.

    They are marked expired in their started registry and RQ's own cleanup retries them (or fails them
    when no retry is left); the dead worker is unregistered. Returns how many jobs were handed back.
    """
    dead = set(_dead_workers(connection))
    if not dead:
        return 0
    count = 0
    for name in queue_names:
        registry = Queue(name, connection=connection).started_job_registry
        expired = 0
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
            with contextlib.suppress(ValueError):  # the execution ended meanwhile
                execution = Execution.fetch(execution_id, job_id, connection)
                if execution.worker_name in dead:
                    connection.zadd(registry.key, {execution.composite_key: 1}, xx=True)
                    expired += 1
        if expired:
            registry.cleanup()
            count += expired
    for name in dead:
        worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=connection)
        if worker is not None:
            log.warning("Worker %s (pid %s, this machine) is gone: unregistered, its jobs retried", name, worker.pid)
            worker.register_death()
    return count


@dataclass
class SchedulerState:
    running: bool
    name: str | None
    host: str | None
    pid: int | None
    last_moved_at: datetime | None
    last_moved_jobs: int


def scheduler_state(connection: Redis, queue_name: str) -> SchedulerState:
    """Whether a scheduler holds this queue's lock with a fresh lease, and when one last moved a job."""
    key = RQScheduler.get_locking_key(queue_name)
    with connection.pipeline(transaction=False) as pipeline:
        pipeline.get(key)
        pipeline.ttl(key)
        pipeline.hgetall(LAST_MOVED_KEY)
        holder, lease_left, moved = pipeline.execute()
    data = {}
    if holder is not None:
        data = {as_text(k): as_text(v) for k, v in connection.hgetall(SCHEDULER_KEY_TEMPLATE % as_text(holder)).items()}
    moved = {as_text(k): as_text(v) for k, v in moved.items()}
    return SchedulerState(
        running=holder is not None and lease_left >= 0 and 61 - lease_left <= STALE_LOCK,
        name=as_text(holder) if holder is not None else None,
        host=data.get("hostname"),
        pid=int(data["pid"]) if data.get("pid", "").isdigit() else None,
        last_moved_at=datetime.fromtimestamp(float(moved["at"]), UTC) if moved.get("at") else None,
        last_moved_jobs=int(moved.get("jobs", 0)),
    )
