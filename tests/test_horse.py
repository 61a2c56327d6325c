"""The kept work horse (jobs/horse.py): one horse runs job after job; a fresh one after WORKER_HORSE_JOBS jobs,
after a failed job, past WORKER_HORSE_MAX_MB, or when the last one died; a job that kills its horse ends as
RQ ends it; no horse outlives its worker. Real `manage.py rqworker` subprocesses on a real Redis."""

from __future__ import annotations

import os
import signal

import psutil
import pytest
from rq.job import Job, JobStatus

from jobs.enqueue import UPLOADS, get_queue
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.scaleout]


def enqueue(*functions: str) -> list[Job]:
    queue = get_queue(UPLOADS)
    return [queue.enqueue(f"tests.helpers.{function}") for function in functions]


def pids(jobs: list[Job]) -> list[int]:
    return [job.latest_result().return_value["pid"] for job in jobs]


def finished(job: Job) -> bool:
    return job.get_status(refresh=True) in (JobStatus.FINISHED, JobStatus.FAILED)


def test_one_horse_runs_job_after_job_and_keeps_its_database_connection(start_worker):
    jobs = enqueue(*["report_connection"] * 3)
    worker = start_worker("--burst")
    assert worker.wait(timeout=120) == 0
    results = [job.latest_result().return_value for job in jobs]
    assert len(set(pids(jobs))) == 1 and results[0]["pid"] != worker.pid
    assert [result["connected_before"] for result in results] == [False, True, True], "one connect, not per job"


def test_a_fresh_horse_after_worker_horse_jobs(start_worker):
    jobs = enqueue(*["report_process"] * 5)
    worker = start_worker("--burst", WORKER_HORSE_JOBS="2")
    assert worker.wait(timeout=120) == 0
    first, second, third, fourth, fifth = pids(jobs)
    assert first == second and third == fourth
    assert len({first, third, fifth}) == 3


def test_past_the_memory_limit_every_job_gets_a_fresh_horse(start_worker):
    jobs = enqueue(*["report_process"] * 3)
    worker = start_worker("--burst", WORKER_HORSE_MAX_MB="1")  # every horse is larger
    assert worker.wait(timeout=120) == 0
    assert len(set(pids(jobs))) == 3


def between_two(start_worker, function: str) -> Job:
    """Run `function` between two jobs that report their horse; assert they ran in different horses."""
    before, middle, after = enqueue("report_process", function, "report_process")
    worker = start_worker("--burst")
    assert worker.wait(timeout=120) == 0
    assert after.get_status(refresh=True) == JobStatus.FINISHED
    assert pids([before]) != pids([after]), "the job's horse was not kept for the next one"
    return middle


def test_a_failed_job_ends_as_always_and_a_fresh_horse_takes_the_next(start_worker):
    failing = between_two(start_worker, "fail_on_purpose")  # a job that failed may have left its horse in any state
    assert failing.get_status(refresh=True) == JobStatus.FAILED
    assert "RuntimeError: failed on purpose" in failing.latest_result().exc_string


def test_a_job_that_kills_its_horse_fails_and_the_worker_goes_on(start_worker):
    killer = between_two(start_worker, "kill_own_process")
    assert killer.get_status(refresh=True) == JobStatus.FAILED
    assert "Work-horse terminated unexpectedly" in killer.latest_result().exc_string
    assert "(signal 9)" in killer.latest_result().exc_string


def test_a_job_that_leaves_a_transaction_open_ends_its_horse(start_worker):
    between_two(start_worker, "leave_transaction_open")  # the next job must not run inside that transaction


def test_an_idle_horse_that_died_is_replaced(start_worker):
    worker = start_worker()
    (first,) = enqueue("report_process")
    wait_for(lambda: finished(first), timeout=120)
    (horse,) = pids([first])
    os.kill(horse, signal.SIGKILL)
    (second,) = enqueue("report_process")
    wait_for(lambda: finished(second), timeout=60)
    assert second.get_status() == JobStatus.FINISHED
    assert pids([second]) != [horse]
    assert worker.poll() is None


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_no_horse_outlives_its_worker(start_worker, stop):
    """Stopped (the idle horse is told to exit) or killed (the kernel ends the horse with it: PDEATHSIG)."""
    worker = start_worker()
    (job,) = enqueue("report_process")
    wait_for(lambda: finished(job), timeout=120)
    (horse,) = pids([job])
    assert psutil.pid_exists(horse)
    worker.send_signal(stop)
    worker.wait(timeout=30)
    wait_for(lambda: not psutil.pid_exists(horse), timeout=10, interval=0.05)
