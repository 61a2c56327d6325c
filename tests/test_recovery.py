"""After a crash: a dead scheduler's lock is taken over within seconds; a dead worker's job is retried at once."""

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from rq import Worker
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import now as utcnow
from rq.utils import utcformat

from jobs import recovery
from jobs.enqueue import QUEUE_NAMES, UPLOADS, enqueue_photos, get_queue, photo_job_id
from recognition.models import PhotoStatus
from tests.conftest import photos_finished, stored_photo, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def leave_a_dead_schedulers_lock(redis, lease: int = 61) -> None:
    """What a scheduler killed with its machine leaves: its locks with a fresh lease, its hash."""
    redis.hset(SCHEDULER_KEY_TEMPLATE % "dead", mapping={
        "name": "dead", "hostname": socket.gethostname(), recovery.HOST_FIELD: recovery.host_id(), "pid": dead_pid(),
        "queues": ",".join(QUEUE_NAMES),
        "created_at": utcformat(utcnow()), "last_heartbeat": utcformat(utcnow()),
    })  # fmt: skip
    for name in QUEUE_NAMES:
        redis.set(RQScheduler.get_locking_key(name), "dead", ex=lease)


def test_a_lock_whose_holder_is_gone_is_released_at_once(redis_server):
    redis = redis_server.client()
    leave_a_dead_schedulers_lock(redis)
    assert recovery.release_dead_scheduler_locks(redis, list(QUEUE_NAMES)) == list(QUEUE_NAMES)
    assert not redis.exists(RQScheduler.get_locking_key(UPLOADS))


def test_a_lock_from_another_machine_is_released_once_its_lease_is_stale(redis_server):
    redis = redis_server.client()
    leave_a_dead_schedulers_lock(redis)
    redis.hset(SCHEDULER_KEY_TEMPLATE % "dead", recovery.HOST_FIELD, "another-container/4026531836")
    assert recovery.release_dead_scheduler_locks(redis, [UPLOADS]) == [], "fresh, and we cannot see its process"
    redis.expire(RQScheduler.get_locking_key(UPLOADS), 61 - recovery.STALE_LOCK - 1)
    assert recovery.release_dead_scheduler_locks(redis, [UPLOADS]) == [UPLOADS]


def test_a_live_schedulers_lock_is_kept(redis_server):
    redis = redis_server.client()
    leave_a_dead_schedulers_lock(redis)
    redis.hset(SCHEDULER_KEY_TEMPLATE % "dead", "pid", os.getpid())  # this process: alive
    assert recovery.release_dead_scheduler_locks(redis, [UPLOADS]) == []


def test_a_worker_takes_over_from_a_dead_scheduler_and_runs_past_due_retries(user, redis_server, start_worker,
                                                                             staff_client):  # fmt: skip
    redis = redis_server.client()
    photo = stored_photo(user, "nofaces/cat.png", status=PhotoStatus.QUEUED)
    get_queue(UPLOADS).enqueue_in(timedelta(seconds=1), "jobs.process_photo.process_photo", photo.pk,
                                  job_id=photo_job_id(photo.pk), meta={"photo_id": photo.pk})  # fmt: skip
    leave_a_dead_schedulers_lock(redis)
    start_worker("--with-scheduler")
    wait_for(lambda: photos_finished([photo.pk]), timeout=60)  # RQ alone: about 61 s, then up to 10 minutes
    state = recovery.scheduler_state(redis, UPLOADS)
    assert state.running and state.name != "dead" and state.last_moved_jobs >= 1
    body = staff_client.get("/admin/queues/").content.decode()
    assert "<strong>Running</strong>" in body and "Last moved a job: never" not in body


def test_a_dead_workers_started_job_is_retried_and_the_worker_unregistered(user, redis_server):
    redis = redis_server.client()
    photo = stored_photo(user, "nofaces/cat.png")
    sum(enqueue_photos([photo.pk], queue=UPLOADS))
    queue = get_queue(UPLOADS)
    worker = Worker([queue], connection=redis, name="killed")
    worker.register_birth()
    job, _ = worker.dequeue_job_and_maintain_ttl(None)
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    redis.hset(worker.key, "pid", dead_pid())
    assert recovery.retry_jobs_of_dead_workers(redis, list(QUEUE_NAMES)) == 0, "a worker that did not say where"
    recovery.mark_host(worker)
    assert queue.started_job_registry.count == 1
    assert recovery.retry_jobs_of_dead_workers(redis, list(QUEUE_NAMES)) == 1
    assert queue.started_job_registry.count == 0
    assert job.get_status(refresh=True) in ("scheduled", "queued"), "retried, not failed: it has retries left"
    assert "killed" not in [w.name for w in Worker.all(connection=redis)]
