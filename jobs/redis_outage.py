"""Worker behaviour for a Redis outage: wait for Redis to come back, where RQ's worker would quit.

RQ rides out an outage only while it waits for a job. When Redis goes away while a job runs, or between
two jobs, its work loop logs "found an unhandled exception, quitting" and the worker is gone (and with it,
under `manage.py runsite`, the whole site). The photo itself is safe either way: its state is in the
database, and `reconcile` queues again whatever was left unfinished. So the worker only has to wait.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import ConnectionError, TimeoutError
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus

log = logging.getLogger(__name__)

OUTAGE = (ConnectionError, TimeoutError)


class RidesOutRedisOutages:
    """A mixin for rq.Worker subclasses (put it first in the bases, before jobs.horse.KeepsItsHorse)."""

    # Longest pause between two attempts to reach Redis again (seconds).
    redis_retry_max_wait = 30

    def execute_job(self, job, queue) -> None:
        try:
            super().execute_job(job, queue)
        except OUTAGE as exc:
            log.warning("Worker %s: Redis went away during job %s (%s); waiting for it", self.name, job.id, exc)
            self._wait_for_work_horse()
            self.wait_for_redis()
            self._settle_interrupted(job, queue)

    def _settle_interrupted(self, job, queue) -> None:
        """A job whose end RQ could not record is left queued or started for ever, and a job id that looks
        alive is never scheduled again (the periodic reconcile). Record it as failed, so that it is retried
        if it may be, and reconcile (which queues again photos whose job failed unfinished) takes the rest."""
        try:
            if job.get_status(refresh=True) not in (JobStatus.QUEUED, JobStatus.STARTED):
                return  # the horse recorded its end after all
            with self.connection.pipeline() as pipeline:
                pipeline.lrem(queue.intermediate_queue_key, 0, job.id)
                pipeline.execute()
            self.handle_job_failure(job, queue, exc_string="Interrupted by a Redis outage; its end was not recorded")
        except NoSuchJobError:
            pass
        except OUTAGE as exc:
            log.warning("Worker %s: could not settle job %s after the outage (%s)", self.name, job.id, exc)

    def check_for_suspension(self, burst: bool) -> None:
        while True:
            try:
                return super().check_for_suspension(burst)
            except OUTAGE as exc:
                log.warning("Worker %s: Redis unavailable (%s); waiting for it", self.name, exc)
                self.wait_for_redis()

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()
        except OUTAGE as exc:
            log.warning("Worker %s: maintenance skipped, Redis unavailable (%s)", self.name, exc)

    def heartbeat(self, *args, **kwargs) -> None:
        try:
            super().heartbeat(*args, **kwargs)
        except OUTAGE as exc:
            # A missed heartbeat only makes the worker look stale for a while; the next one mends it.
            log.warning("Worker %s: heartbeat skipped, Redis unavailable (%s)", self.name, exc)

    def wait_for_redis(self) -> None:
        delay = 1.0
        while True:
            try:
                self.connection.ping()
                log.info("Worker %s: Redis is back", self.name)
                return
            except OUTAGE:
                time.sleep(delay)
                delay = min(delay * 2, self.redis_retry_max_wait)

    def _wait_for_work_horse(self) -> None:
        """If the horse still runs (the outage hit while RQ was watching it), let it finish its job."""
        self.let_horse_finish()  # jobs.horse.KeepsItsHorse, the other half of the worker class
