"""A job whose end RQ could not record during a Redis outage is settled once Redis is back."""

from __future__ import annotations

from rq import Worker
from rq.job import JobStatus
from rq.registry import FailedJobRegistry

from jobs.enqueue import UPLOADS, get_queue
from jobs.redis_outage import RidesOutRedisOutages


class OutageWorker(RidesOutRedisOutages, Worker):
    pass


def test_a_job_left_started_by_an_outage_is_recorded_failed(redis_server):
    queue = get_queue(UPLOADS)
    job = queue.enqueue_call("jobs.reconcile.run_scheduled", job_id="reconcile")
    job.set_status(JobStatus.STARTED)
    OutageWorker([queue], connection=queue.connection)._settle_interrupted(job, queue)
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert "reconcile" in FailedJobRegistry(queue=queue).get_job_ids()


def test_a_job_that_recorded_its_end_is_left_alone(redis_server):
    queue = get_queue(UPLOADS)
    job = queue.enqueue_call("jobs.reconcile.run_scheduled", job_id="reconcile")
    job.set_status(JobStatus.FINISHED)
    OutageWorker([queue], connection=queue.connection)._settle_interrupted(job, queue)
    assert job.get_status(refresh=True) == JobStatus.FINISHED
