"""Queue figures, workers and failed jobs (page, API, actions), and pausing a queue with real workers."""

import time
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from rest_framework.test import APIClient
from rq import Worker
from rq.utils import utcformat

from jobs import monitoring
from jobs.enqueue import BULK, GALLERY, UPLOADS, enqueue_photos, get_queue, pause_queue, photo_job_id, resume_queue
from jobs.worker import FaceWorker
from recognition.models import Photo, PhotoStatus
from tests.conftest import HeldFile, photos_finished, stored_photo, token_client, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_api(staff_user) -> APIClient:
    return token_client(staff_user)


@pytest.fixture
def missing_file_failure(user, run_jobs, settings):
    """A photo whose file went missing: its job fails (after its one retry) and the photo with it."""
    settings.JOB_RETRY_INTERVALS = [0]  # retry at once, so one burst sees the job through to failed
    photo = stored_photo(user, "people/hayes/photo_2.jpg")
    data = photo.image.read()
    photo.image.close()
    photo.image.storage.delete(photo.image.name)
    sum(enqueue_photos([photo.pk], queue=UPLOADS))
    run_jobs(expect_failures=True)
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.FAILED and "FileNotFoundError" in photo.error
    return photo, data


def test_api_is_for_staff_only(api, client, redis_server):
    assert api.get("/api/queues/").status_code == 403
    assert client.get("/api/queues/").status_code in (401, 403)


def test_api_gives_the_figures(staff_api, user, missing_file_failure):
    photo, _ = missing_file_failure
    waiting = [stored_photo(user, status=PhotoStatus.QUEUED) for _ in range(2)]
    sum(enqueue_photos([p.pk for p in waiting], queue=BULK))
    pause_queue(BULK)
    body = staff_api.get("/api/queues/").json()
    queues = {queue["name"]: queue for queue in body["queues"]}
    assert list(queues) == ["high", "default", "alerts", "low"]
    assert queues["low"]["queued"] == 2 and queues["low"]["paused"] is True
    assert queues["low"]["oldest_queued_seconds"] >= 0
    assert queues["high"]["failed"] == 1 and queues["high"]["queued"] == 0
    assert queues["high"]["oldest_queued_seconds"] is None
    assert set(queues["high"]) >= {"queued", "started", "deferred", "scheduled", "finished", "failed"}
    assert body["photos"]["backlog"] == 2 and body["photos"]["failed_last_5_min"] == 1
    # One photo finished (failed) in 5 minutes: 0.2 a minute, so the backlog of 2 takes 10 minutes.
    assert body["photos"]["per_minute"] == 0.2 and body["photos"]["eta_seconds"] == 600
    [failed] = body["failed_jobs"]
    assert failed["photo_id"] == photo.pk and failed["owner"] == "alice"
    assert failed["exception_type"] == "FileNotFoundError" and failed["attempts"] == 2
    assert failed["failed_at"] and "traceback" not in failed
    assert body["workers"] == []


def test_failed_job_shows_on_the_page_with_its_traceback(staff_client, missing_file_failure):
    photo, _ = missing_file_failure
    body = staff_client.get("/admin/queues/").content.decode()
    assert f'href="/admin/recognition/photo/{photo.pk}/change/"' in body
    assert "FileNotFoundError" in body and "Traceback (most recent call last)" in body
    assert "<details>" in body


def test_requeue_after_the_cause_is_fixed_ends_done(staff_client, missing_file_failure, run_jobs):
    photo, data = missing_file_failure
    photo.image.storage.save(photo.image.name, ContentFile(data))  # the file is back
    response = staff_client.post("/admin/queues/requeue/", {"job": photo_job_id(photo.pk)}, follow=True)
    assert "Requeued 1 failed job." in response.content.decode()
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.QUEUED and photo.error == ""
    assert get_queue(UPLOADS).failed_job_registry.count == 0
    job = get_queue(UPLOADS).fetch_job(photo_job_id(photo.pk))
    assert job.retries_left == 1, "a fresh job, with its retries back"
    run_jobs()
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.DONE and photo.faces.count() == 1


def test_requeue_all_and_delete(staff_client, user, missing_file_failure, run_jobs):
    photo, _ = missing_file_failure
    get_queue(GALLERY).enqueue("tests.helpers.no_such_function")
    run_jobs(expect_failures=True)
    assert len(monitoring.failed_jobs()) == 2
    staff_client.post("/admin/queues/requeue/", {"all": "1"})
    assert get_queue(UPLOADS).count == 1 and get_queue(GALLERY).count == 1
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.QUEUED
    run_jobs(expect_failures=True)  # the file is still missing: both fail again
    staff_client.post("/admin/queues/delete/", {"selected": [photo_job_id(photo.pk)]})
    assert [job.queue for job in monitoring.failed_jobs()] == [GALLERY]
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.FAILED, "deleting the job leaves the photo failed"
    staff_client.post("/admin/queues/delete/", {"all": "1"})
    assert monitoring.failed_jobs() == []


def test_a_paused_queue_keeps_its_jobs_from_real_workers(user, start_worker):
    upload, bulk = stored_photo(user, "nofaces/cat.png"), stored_photo(user, "nofaces/coffee.jpg")
    sum(enqueue_photos([upload.pk], queue=UPLOADS))
    sum(enqueue_photos([bulk.pk], queue=BULK))
    pause_queue(BULK)
    assert start_worker("--burst").wait(timeout=120) == 0
    assert photos_finished([upload.pk]) and not photos_finished([bulk.pk])
    assert get_queue(BULK).get_job_ids() == [photo_job_id(bulk.pk)], "the job is still queued"
    assert Photo.objects.get(pk=bulk.pk).status == PhotoStatus.QUEUED

    resume_queue(BULK)
    assert start_worker("--burst").wait(timeout=120) == 0
    assert photos_finished([bulk.pk])


def test_a_running_worker_stops_and_starts_taking_jobs(user, start_worker):
    pause_queue(UPLOADS)
    start_worker()
    wait_for(lambda: any(w.state == "idle" for w in monitoring.workers()), timeout=60)
    photo = stored_photo(user, "nofaces/cat.png")
    sum(enqueue_photos([photo.pk], queue=UPLOADS))
    [worker] = monitoring.workers()
    assert worker.pid and worker.host and not worker.stale and worker.queues == ["high", "default", "alerts", "low"]
    # The worker looks again every few seconds; the job must still be waiting after several looks.
    time.sleep(2 * FaceWorker.pause_check_interval)
    assert get_queue(UPLOADS).get_job_ids() == [photo_job_id(photo.pk)]
    resume_queue(UPLOADS)
    wait_for(lambda: photos_finished([photo.pk]), timeout=60)
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.DONE


def test_the_page_and_the_api_say_when_redis_is_down(staff_client, staff_api, settings):
    dead = {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 5}
    settings.RQ_QUEUES = {name: dead for name in settings.RQ_QUEUES}
    response = staff_client.get("/admin/queues/")
    assert response.status_code == 200 and b"Redis is unavailable" in response.content
    response = staff_api.get("/api/queues/")
    assert response.status_code == 503 and "Redis is unavailable" in response.json()["error"]


def test_a_worker_whose_heartbeat_stopped_is_marked_stale(staff_client, redis_server):
    ghost = Worker([get_queue(UPLOADS)], connection=redis_server.client(), name="ghost")
    ghost.register_birth()
    long_ago = timezone.now() - monitoring.STALE_AFTER - timedelta(seconds=1)
    redis_server.client().hset(ghost.key, "last_heartbeat", utcformat(long_ago))
    [worker] = monitoring.workers()
    assert worker.name == "ghost" and worker.stale and worker.current_job is None
    body = staff_client.get("/admin/queues/").content.decode()
    assert "ghost" in body and 'class="stale"' in body


def test_pausing_a_queue_a_worker_is_already_waiting_on(user, start_worker):
    """The worker is idle, blocked waiting on all three queues, when `high` is paused: the upload that arrives
    next wakes it, and it puts the job back instead of running it. A job on `default` shows it went on."""
    start_worker()
    wait_for(lambda: [w.state for w in monitoring.workers()] == ["idle"], timeout=60)
    pause_queue(UPLOADS)
    photo = stored_photo(user, "nofaces/cat.png")
    sum(enqueue_photos([photo.pk], queue=UPLOADS))
    marker = get_queue(GALLERY).enqueue("tests.helpers.report_process")
    wait_for(lambda: marker.get_status(refresh=True) == "finished", timeout=60)
    assert get_queue(UPLOADS).get_job_ids() == [photo_job_id(photo.pk)], "put back, at the front"
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.QUEUED
    resume_queue(UPLOADS)
    wait_for(lambda: photos_finished([photo.pk]), timeout=60)


def test_a_busy_worker_shows_its_job_and_photo(staff_client, user, start_worker):
    photo = stored_photo(user, "nofaces/cat.png")
    held = HeldFile(photo)
    sum(enqueue_photos([photo.pk], queue=UPLOADS))
    start_worker()
    wait_for(lambda: Photo.objects.get(pk=photo.pk).status == PhotoStatus.PROCESSING, timeout=60)
    wait_for(lambda: [w.current_job for w in monitoring.workers()] == [photo_job_id(photo.pk)], timeout=30)
    [worker] = monitoring.workers()
    assert worker.state == "busy" and worker.current_photo == photo.pk
    body = staff_client.get("/admin/queues/").content.decode()
    assert f"<td>{photo_job_id(photo.pk)}</td>" in body
    assert f'<a href="/admin/recognition/photo/{photo.pk}/change/">{photo.pk}</a>' in body
    assert staff_client.get("/api/queues/").json()["workers"][0]["current_photo"] == photo.pk
    held.release()
    wait_for(lambda: photos_finished([photo.pk]), timeout=60)
