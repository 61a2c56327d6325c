"""The RQ worker class: loads the face models once, in the parent, before any work horse is forked.

It also honours paused queues (RQ itself can only suspend whole workers), keeps the periodic
`reconcile` job scheduled, recovers quickly from a crash (jobs/recovery.py) and records each job's
figures (jobs/stats.py).
"""

from __future__ import annotations

import errno
import gc
import logging
import math
import os
import signal
import time
from pathlib import Path

from django.conf import settings
from django.db import connections
from redis.exceptions import ConnectionError, TimeoutError
from rq import Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.job import Job
from rq.queue import Queue
from rq.worker import WorkerStatus

from jobs import galleries, recovery, stats
from jobs.enqueue import paused_queues
from jobs.horse import KeepsItsHorse
from jobs.redis_outage import RidesOutRedisOutages
from jobs.supervisor import die_with_parent
from recognition import engine

log = logging.getLogger(__name__)


AUTOGROUP_TRIES = 50


def yield_cpu(niceness: int) -> None:
    """Face work yields the CPU to the web server, so that uploads stay quick while workers are saturated.

    Niceness alone does not do it where the kernel schedules by autogroup (Linux's default when built with
    it): the CPU is first shared equally between sessions, whatever their processes' niceness, and
    runsite starts each worker and the web server in a session of its own. A worker that leads its session
    so also gives the session (itself, its horses and scheduler) that niceness. One started from a shell
    leaves the shell's session alone."""
    if not niceness:
        return
    os.nice(niceness)
    if os.getsid(0) != os.getpid():
        return
    # Without CAP_SYS_ADMIN the kernel takes one autogroup change per 100 ms from all processes together
    # (EAGAIN otherwise): workers started at once take turns.
    for _ in range(AUTOGROUP_TRIES):
        try:
            Path("/proc/self/autogroup").write_text(str(niceness))
            return
        except OSError as exc:
            if exc.errno != errno.EAGAIN:  # no autogroup scheduling in this kernel, or not allowed
                log.info("Worker niceness %s: the session's autogroup kept its own (%s)", niceness, exc)
                return
            time.sleep(0.1)
    log.warning("Worker niceness %s: the kernel refused the session's autogroup niceness", niceness)


class FaceWorker(RidesOutRedisOutages, KeepsItsHorse, Worker):
    """Forks a work horse that runs many jobs (jobs/horse.py); each horse shares the parent's loaded models."""

    # An idle worker looks at the paused queues this often (seconds); a blocking pop never waits longer.
    pause_check_interval = 5
    # And makes sure the next reconcile run is scheduled this often (seconds): one HGET each time.
    reconcile_check_interval = 5
    # Crash recovery (a dead scheduler's lock, jobs of dead workers) and the queue depth sample, this often.
    recovery_interval = 5
    depth_sample_interval = 60

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        engine.load_models()
        engine.warm_up()
        yield_cpu(settings.WORKER_NICENESS)
        self._reconcile_checked_at = -math.inf
        self._recovered_at = self._depth_sampled_at = -math.inf

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ's, with our scheduler class, after releasing a lock that a crashed scheduler left behind."""
        self.scheduler = recovery.Scheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        recovery.release_dead_scheduler_locks(self.connection, self.queue_names(), self.scheduler.interval + 60)
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()
        else:
            self.scheduler.start()

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        die_with_parent(signal.SIGKILL)  # a horse outliving its worker would run a job nobody watches
        super().main_work_horse(job, queue)

    def perform_job(self, job: Job, queue: Queue, execution) -> bool:
        """RQ's, in the work horse; then the job's figures go to Redis and its line to the log."""
        stats.clear_note()
        ok = False
        try:
            ok = super().perform_job(job, queue, execution)
            return ok
        finally:
            try:
                stats.record_job(self.connection, job, queue.name)
            except Exception:  # figures must never fail a job
                log.warning("Worker %s: could not record the figures of job %s", self.name, job.id, exc_info=True)
            started = job.started_at.timestamp() if job.started_at else time.time()
            duration_ms = round((time.time() - started) * 1000)
            fields = {"job_id": job.id, "queue": queue.name, "photo_id": job.meta.get("photo_id")}
            outcome = "finished" if ok else "failed"
            log.info("job %s %s in %d ms", job.id, outcome, duration_ms, extra={**fields, "duration_ms": duration_ms})

    def register_birth(self) -> None:
        super().register_birth()
        recovery.mark_host(self)  # so that a worker of this machine can tell, after a crash, that it is dead

    def fork_work_horse(self, job, queue) -> None:
        galleries.preload(job)  # the horse inherits the first job's gallery instead of reading it
        # A forked child must not share the parent's database socket.
        connections.close_all()
        # The parent's objects (Django, numpy, the models' wrappers: about a million) are frozen for the fork, so
        # the horse's garbage collections never walk them: their pages stay shared instead of being copied,
        # page by page, into every horse. The parent unfreezes them at once (fork returns only in the parent;
        # the horse ends with os._exit), so its own garbage stays collectable.
        gc.freeze()
        try:
            super().fork_work_horse(job, queue)
        finally:
            gc.unfreeze()

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        """RQ's dequeue, over the queues that are not paused; jobs on paused queues stay queued."""
        everything = self._ordered_queues
        idle_since = time.monotonic()
        while True:
            step = None if timeout is None else min(timeout, self.pause_check_interval)
            if step is not None and max_idle_time is not None:
                left = max_idle_time - (time.monotonic() - idle_since)
                if left <= 0:
                    return None
                step = max(1, min(step, math.ceil(left)))
            try:
                self._keep_reconcile_scheduled()
                if step is not None:  # not in burst mode
                    self._housekeeping()
                paused = paused_queues(self.connection)  # one round trip, not one per queue
                active = [queue for queue in everything if queue.name not in paused]
                if not active and step is not None:
                    self.set_state(WorkerStatus.IDLE)
                    self.heartbeat()
            except (ConnectionError, TimeoutError) as exc:
                # As RQ's own dequeue does: wait for Redis to come back rather than die.
                log.warning("Worker %s: Redis unavailable (%s), retrying", self.name, exc)
                time.sleep(step or 1)
                continue
            if not active:
                if step is None:
                    return None  # burst mode: nothing this worker may take
                self.procline("All queues paused")
                time.sleep(step)
                continue
            self._ordered_queues = active
            try:
                result = super().dequeue_job_and_maintain_ttl(step, max_idle_time=step)
            finally:
                self._ordered_queues = everything
            if result is None:
                if step is None:
                    return None
                continue
            job, queue = result
            if self._put_back_if_paused(job, queue):
                continue
            self.reorder_queues(reference_queue=queue)
            return result

    def _put_back_if_paused(self, job: Job, queue: Queue) -> bool:
        """A queue paused while this worker was waiting on it gets its job back, at the front."""
        try:
            if queue.name not in paused_queues(self.connection):
                return False
            with self.connection.pipeline() as pipeline:
                pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
                queue.push_job_id(job.id, pipeline=pipeline, at_front=True)
                pipeline.execute()
        except (ConnectionError, TimeoutError):
            return False  # Redis went away just now: run the job we hold rather than drop it
        return True

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # With all but one queue paused, RQ pops through its intermediate list (BLMOVE) even though this
        # worker has several queues; always take the job off that list (a no-op when it is not there).
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def _keep_reconcile_scheduled(self) -> None:
        if time.monotonic() - self._reconcile_checked_at < self.reconcile_check_interval:
            return
        from jobs.reconcile import ensure_scheduled

        try:
            ensure_scheduled(self.connection)
        except (ConnectionError, TimeoutError):
            raise  # the caller waits for Redis
        except Exception:
            # RQ's work loop quits on any exception from here: log it and try again next time instead.
            log.exception("Worker %s: could not schedule reconcile", self.name)
        self._reconcile_checked_at = time.monotonic()

    def _housekeeping(self) -> None:
        """Every few seconds while idle: recover from a crash, sample the queue depths for the charts."""
        now = time.monotonic()
        try:
            if now - self._recovered_at >= self.recovery_interval:
                self._recovered_at = now
                recovery.keep_scheduler_running(self)
                recovery.retry_jobs_of_dead_workers(self.connection, self.queue_names())
            if now - self._depth_sampled_at >= self.depth_sample_interval:
                self._depth_sampled_at = now
                stats.sample_depth(self.connection)
        except (ConnectionError, TimeoutError):
            raise  # the caller waits for Redis
        except Exception:
            # As for reconcile: RQ's work loop would quit on it; log it and try again next time instead.
            log.exception("Worker %s: housekeeping failed", self.name)
