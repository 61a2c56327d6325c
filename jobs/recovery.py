"""After a crash: give the scheduler lock of a dead scheduler back, and retry the jobs of dead workers.

RQ's worker takes the scheduler lock when it starts. When a crash left the lock with a scheduler that is
gone, the lock expires about 61 s later, but RQ tries again only in its maintenance pass, every 10
minutes: past-due retries and the scheduled reconcile sit in Redis meanwhile. Likewise a job whose worker
was killed stays "started" until RQ's maintenance notices it. FaceWorker calls `keep_scheduler_running`
and `retry_jobs_of_dead_workers` every few seconds instead. A holder is known dead when it ran on this
host and its process is gone, or when it has not refreshed its lease for STALE_LOCK seconds.
"""

from __future__ import annotations

import contextlib
import logging
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


class Scheduler(RQScheduler):
    """RQ's scheduler, which goes with its worker and notes when it last moved a job to a queue."""

    def work(self) -> None:
        die_with_parent(signal.SIGKILL)  # a scheduler outliving its worker would hold the lock for nothing
        super().work()

    def enqueue_scheduled_jobs(self) -> None:
        if not self._scheduled_job_registries and self._acquired_locks:
            self.prepare_registries()
        due = sum(len(registry.get_jobs_to_schedule(time.time())) for registry in self._scheduled_job_registries)
        super().enqueue_scheduled_jobs()
        if due:
            self.connection.hset(LAST_MOVED_KEY, mapping={"at": time.time(), "jobs": due, "scheduler": self.name})


def _process_gone(pid: int, alive_at: datetime | None) -> bool:
    """Whether pid (on this host) is not the process that was alive at alive_at (it died, or was reused)."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    return alive_at is not None and started > alive_at.timestamp()


def _scheduler_dead(connection: Redis, holder: str, lease_left: int, lease: int) -> bool:
    if lease_left >= 0 and lease - lease_left > STALE_LOCK:
        return True
    data = {as_text(k): as_text(v) for k, v in connection.hgetall(SCHEDULER_KEY_TEMPLATE % holder).items()}
    if data.get("hostname") != socket.gethostname() or not data.get("pid", "0").isdigit():
        return False
    heartbeat = utcparse(data["last_heartbeat"]) if data.get("last_heartbeat") else None
    return int(data["pid"]) > 0 and _process_gone(int(data["pid"]), heartbeat)


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


def _worker_dead(worker: Worker) -> bool:
    if worker.hostname != socket.gethostname() or not worker.pid:
        return False
    return _process_gone(worker.pid, worker.last_heartbeat)


def retry_jobs_of_dead_workers(connection: Redis, queue_names: list[str]) -> int:
    """Jobs started by a worker of this host whose process is gone are retried now, not minutes later.

    They are marked expired in their started registry and RQ's own cleanup retries them (or fails them
    when no retry is left); the dead worker is unregistered. Returns how many jobs were handed back.
    """
    dead = {worker.name: worker for worker in Worker.all(connection=connection) if _worker_dead(worker)}
    if not dead:
        return 0
    count = 0
    for name in queue_names:
        registry = Queue(name, connection=connection).started_job_registry
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
            with contextlib.suppress(ValueError):  # the execution ended meanwhile
                execution = Execution.fetch(execution_id, job_id, connection)
                if execution.worker_name in dead:
                    connection.zadd(registry.key, {execution.composite_key: 1}, xx=True)
                    count += 1
        if count:
            registry.cleanup()
    for worker in dead.values():
        log.warning("Worker %s (pid %s on this host) is gone: unregistered, its jobs retried", worker.name, worker.pid)
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
