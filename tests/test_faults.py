"""Faults for real: a real Redis stopped, restarted, flushed and killed, worker processes killed with SIGKILL,
a busy SQLite database, a full queue, a job past its timeout. In each, every photo ends done (or failed with a
clear reason), nothing is lost and nothing runs twice, and the recovery path the test names is seen to run
(in the workers' own log lines).

A job "in progress" waits on its photo's file, a named pipe the test releases (HeldFile): no test depends on
how long a photo takes. These need a Redis of their own to stop and start, and the default SQLite database:
they are not part of CI's scale-out pass (no `scaleout` mark).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rq.registry import FailedJobRegistry

from jobs.enqueue import UPLOADS, fair_share, get_queue, pause_queue
from recognition.models import Alert, Face, Person, Photo, PhotoStatus, ReferencePhoto
from tests.conftest import HeldFile, face_file, photos_finished, post_over_http, stored_photo, upload_of, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="stops and restarts a Redis of its own"),
]

SMALL_PHOTOS = ["people/obama/senate.jpg", "people/biden/senate.jpg", "people/clinton/senate.jpg",
                "people/harris/senate.jpg", "people/hayes/photo_2.jpg", "portraits/029701.jpg"]  # fmt: skip
# Workers that run the scheduled reconcile often: RQ's scheduler in the worker, every second once scheduled.
SCHEDULED = {"RECONCILE_INTERVAL": "1"}
GROUP = "groups/situation_room_2011.jpg"


def portraits(count: int) -> list[str]:
    return [f"portraits/{path.name}" for path in sorted(face_file("portraits").glob("*.jpg"))[:count]]


def upload(api, relative: str) -> dict:
    response = api.post("/api/photos/", {"image": upload_of(relative)})
    assert response.status_code == 202, response.content
    return response.json()


def upload_all(api, names: list[str]) -> list[int]:
    return [upload(api, name)["id"] for name in names]


def statuses(ids: list[int]) -> dict[int, tuple[str, str]]:
    return {photo.pk: (photo.status, photo.error) for photo in Photo.objects.filter(pk__in=ids)}


def wait_until_done(ids: list[int], timeout: float = 240) -> None:
    try:
        wait_for(lambda: photos_finished(ids), timeout=timeout, interval=0.5)
    except AssertionError:
        raise AssertionError(f"not finished: {statuses(ids)}") from None
    assert {status for status, _ in statuses(ids).values()} == {PhotoStatus.DONE}, statuses(ids)


class WorkerLogs:
    """Everything the worker subprocesses wrote (they share the test's stderr), read as it comes."""

    def __init__(self, capfd) -> None:
        self.capfd = capfd
        self.text = ""

    def read(self) -> str:
        out, err = self.capfd.readouterr()
        self.text += out + err
        return self.text

    def wait_for(self, line: str, timeout: float = 120) -> None:
        try:
            wait_for(lambda: line in self.read(), timeout=timeout, interval=0.5)
        except AssertionError:
            raise AssertionError(f"the workers never logged {line!r}") from None


@pytest.fixture
def logs(capfd) -> WorkerLogs:
    return WorkerLogs(capfd)


def assert_ran_once(ids: list[int], logs: WorkerLogs, attempts: int = 1, faces: int = 1) -> None:
    """Nothing ran twice: one successful job per photo, one set of faces."""
    for photo_id in ids:  # a photo is done in the database before its job's end is logged
        logs.wait_for(f"Job OK (photo-{photo_id})")
    text = logs.read()
    for photo in Photo.objects.filter(pk__in=ids):
        assert text.count(f"Job OK (photo-{photo.pk})") == 1, f"photo {photo.pk} succeeded once"
        assert photo.attempts == attempts, (photo.pk, photo.attempts)
        assert photo.faces.count() == faces, (photo.pk, photo.faces.count())


def stop_gracefully(redis_server) -> None:
    """As `systemctl stop` does: SIGTERM, and Redis flushes its append-only file before it exits."""
    redis_server.process.terminate()
    redis_server.process.wait(timeout=30)
    redis_server.process = None


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def work_horse(worker: subprocess.Popen) -> int:
    """The forked process running the worker's current job (RQ puts it in a process group of its own)."""
    horses = [pid for pid in children(worker.pid) if os.getpgid(pid) == pid]
    assert len(horses) == 1, horses
    return horses[0]


def alive(process: subprocess.Popen) -> bool:
    return process.poll() is None


def held_upload(api, relative: str = GROUP) -> tuple[int, HeldFile]:
    """An uploaded photo whose job, once a worker takes it, waits until the test releases its file."""
    photo_id = upload(api, relative)["id"]
    return photo_id, HeldFile(Photo.objects.get(pk=photo_id))


def wait_until_processing(photo_id: int) -> None:
    wait_for(lambda: Photo.objects.get(pk=photo_id).status == PhotoStatus.PROCESSING, timeout=120, interval=0.05)


@pytest.fixture
def redis_server(redis_server):
    """The session's Redis, running again after the test whatever the test did to it."""
    yield redis_server
    if redis_server.process is None:
        redis_server.start()


# Redis


def test_redis_down_while_a_user_uploads(api, redis_server, start_worker, logs):
    """The upload is stored and the user told it waits; once Redis is back the worker's reconcile queues it."""
    worker = start_worker("--with-scheduler", **SCHEDULED)
    before = upload(api, SMALL_PHOTOS[0])["id"]
    wait_until_done([before])
    # Its job ended too: a photo is done in the database before RQ records its job's end, and a job whose end
    # Redis never heard of runs again after the outage (harmless, but this test counts runs).
    logs.wait_for(f"Job OK (photo-{before})")

    redis_server.stop()
    during = api.post("/api/photos/", {"image": upload_of(SMALL_PHOTOS[1])})
    assert during.status_code == 202
    body = during.json()
    assert body["status"] == "waiting"
    assert body["message"] == ("Stored, not lost: the job queue is unavailable, this photo will be processed later.")
    photo = Photo.objects.get(pk=body["id"])
    assert photo.status == PhotoStatus.WAITING and Path(photo.image.path).exists()

    redis_server.start()  # same port, same data folder
    wait_until_done([body["id"]])
    assert alive(worker), "the worker lived through the outage"
    assert "unfinished photos: queued 1 again" in logs.read(), "the scheduled reconcile queued it"
    assert_ran_once([before, body["id"]], logs)


def test_reference_upload_while_redis_is_down_is_stored_and_encoded_later(api, redis_server, start_worker, logs):
    person = api.post("/api/people/", {"name": "Obama"}, format="json").json()
    redis_server.stop()
    response = api.post(f"/api/people/{person['id']}/references/", {"image": upload_of("people/obama/senate.jpg")})
    assert response.status_code == 202
    assert response.json()["message"] == (
        "Stored, not lost: the job queue is unavailable, this photo will be encoded later."
    )
    redis_server.start()
    # Past reconcile's grace for a reference on its way to Redis (the outage lasted a while).
    ReferencePhoto.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
    start_worker("--with-scheduler", **SCHEDULED)
    wait_for(lambda: ReferencePhoto.objects.get().status == "done", timeout=120, interval=0.5)
    assert "queued 1 reference photos and 0 alert deliveries again" in logs.read()


def test_person_deleted_while_redis_is_down(api, redis_server):
    person = api.post("/api/people/", {"name": "Obama"}, format="json").json()
    redis_server.stop()
    assert api.delete(f"/api/people/{person['id']}/").status_code == 204
    assert not Person.objects.exists()


def test_redis_restarted_with_photos_queued_keeps_them(api, redis_server, start_worker, logs):
    ids = upload_all(api, SMALL_PHOTOS)
    queued = get_queue(UPLOADS).count
    assert queued == min(len(ids), fair_share()), "one user's next photos wait their turn in the database"
    stop_gracefully(redis_server)
    redis_server.start()
    assert get_queue(UPLOADS).count == queued, "the append-only file brought every job back"
    workers = [start_worker("--burst") for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=300) == 0
    wait_until_done(ids, timeout=10)
    assert_ran_once(ids, logs)


def test_redis_killed_loses_what_it_had_not_saved_and_reconcile_queues_it_again(api, redis_server, start_worker,
                                                                                 logs):  # fmt: skip
    """SIGKILL, and the append-only file lost what it had not written yet (here: everything since the uploads,
    the scheduled reconcile run included). The same workers, whose scheduler lost its connection too, find the
    photos through the database and run each once; new uploads go on."""
    workers = [start_worker("--with-scheduler", **SCHEDULED) for _ in range(2)]
    pause_queue(UPLOADS)  # the uploads wait in Redis, where the kill loses them
    ids = upload_all(api, SMALL_PHOTOS)
    redis_server.stop()
    for saved in redis_server.data_dir.glob("appendonly*"):
        saved.unlink()
    redis_server.start()
    assert get_queue(UPLOADS).count == 0, "the jobs are gone"
    # Past the grace reconcile gives a photo on its way to Redis: the outage lasted a while.
    Photo.objects.filter(pk__in=ids).update(queued_at=timezone.now() - timedelta(minutes=5))
    wait_until_done(ids)
    assert_reconciled(ids, logs)
    later = upload_all(api, portraits(2))  # after the restart, on the same workers
    wait_until_done(later)
    assert all(alive(worker) for worker in workers), "the workers reconnected"
    assert_ran_once(ids + later, logs)


def assert_reconciled(ids: list[int], logs) -> None:
    """Reconcile found the lost photos and queued them again: all of them, or the owner's fair share at
    once (the rest follow as each job ends)."""
    queued = sum(int(n) for n in re.findall(r"unfinished photos: queued (\d+) again", logs.read()))
    assert queued >= min(len(ids), fair_share()), "reconcile queued the lost photos again"


def test_redis_flushed_then_reconcile_queues_every_photo_again(api, redis_server, start_worker, logs):
    ids = upload_all(api, SMALL_PHOTOS)
    redis_server.client().flushall()
    assert get_queue(UPLOADS).count == 0
    # The flush came a while after the uploads: past the grace reconcile gives a photo on its way to Redis.
    Photo.objects.filter(pk__in=ids).update(queued_at=timezone.now() - timedelta(minutes=5))
    start_worker("--with-scheduler", **SCHEDULED)
    wait_until_done(ids)
    assert_reconciled(ids, logs)
    assert_ran_once(ids, logs)


# Workers killed mid-job


@pytest.fixture
def obama(api, run_jobs) -> Person:
    person = api.post("/api/people/", {"name": "Obama"}, format="json").json()
    image = upload_of("people/obama/portrait_2012.jpg")
    assert api.post(f"/api/people/{person['id']}/references/", {"image": image}).status_code == 202
    run_jobs()
    return Person.objects.get(pk=person["id"])


def assert_processed_once(photo_id: int, obama: Person, logs: WorkerLogs, attempts: int) -> None:
    """Faces stored once (no box twice), one alert for Obama, one successful job."""
    photo = Photo.objects.get(pk=photo_id)
    boxes = [face.box for face in photo.faces.all()]
    assert len(boxes) >= 8
    assert all(a.overlap(b) < 0.5 for i, a in enumerate(boxes) for b in boxes[i + 1 :]), "no face stored twice"
    assert photo.faces.filter(person=obama).count() == 1
    assert Alert.objects.filter(photo=photo).count() == Alert.objects.filter(photo=photo, person=obama).count() == 1
    logs.wait_for(f"Job OK (photo-{photo_id})")  # a photo is done in the database before its job's end is logged
    assert logs.read().count(f"Job OK (photo-{photo_id})") == 1
    assert photo.attempts == attempts


def test_work_horse_killed_mid_job_is_retried(api, obama, start_worker, settings, logs):
    settings.JOB_RETRY_INTERVALS = [1, 1, 1]
    photo_id, held = held_upload(api)
    worker = start_worker("--with-scheduler")
    wait_until_processing(photo_id)
    os.kill(work_horse(worker), signal.SIGKILL)  # as the kernel's out-of-memory killer would
    held.restore()

    wait_until_done([photo_id])
    text = logs.read()
    assert f"job photo-{photo_id} failed (Work-horse terminated unexpectedly" in text
    assert "unfinished photos: queued" not in text, "RQ's retry ran it again, not reconcile"
    assert_processed_once(photo_id, obama, logs, attempts=2)
    assert alive(worker)


def test_worker_killed_mid_job_another_worker_finishes_it(api, obama, start_worker, logs):
    """The whole worker dies (parent and work horse); a new worker on the same machine takes over.

    RQ still holds the job as started. The new worker sees its owner's process is gone and retries the job
    (jobs.recovery); the scheduled reconcile, which runs meanwhile, leaves a photo whose retry is scheduled
    alone, even one whose start is set back past the job timeout: it runs once more, not twice.
    """
    photo_id, held = held_upload(api)
    first = start_worker(**SCHEDULED)
    wait_until_processing(photo_id)
    horse = work_horse(first)
    # The horse is among the worker's children too: once killed, the worker may reap it before a second kill.
    for pid in dict.fromkeys([horse, *children(first.pid), first.pid]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    first.wait()
    held.restore()
    assert Photo.objects.get(pk=photo_id).status == PhotoStatus.PROCESSING
    Photo.objects.filter(pk=photo_id).update(started_at=timezone.now() - timedelta(hours=1))

    start_worker("--with-scheduler", **SCHEDULED)
    wait_until_done([photo_id], timeout=300)
    text = logs.read()
    assert "is gone: unregistered, its jobs retried" in text
    assert "Job OK (reconcile)" in text and "unfinished photos: queued" not in text
    assert_processed_once(photo_id, obama, logs, attempts=2)


# The database


def test_busy_sqlite_four_workers_and_twenty_concurrent_uploads(user, live_server, redis_server, start_worker, capfd):
    """20 uploads at once over HTTP to a threaded server while 4 worker processes write their results."""
    assert connection.vendor == "sqlite"
    workers = [start_worker() for _ in range(4)]
    token = Token.objects.create(user=user).key
    results: dict[str, tuple[int, dict]] = {}

    def post(name: str) -> None:
        results[name] = post_over_http(f"{live_server.url}/api/photos/", token, name)[:2]

    threads = [threading.Thread(target=post, args=(name,)) for name in portraits(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _ in results.values()) == [202] * 20, results
    ids = [body["id"] for _, body in results.values()]
    assert Photo.objects.filter(owner=user).count() == 20, "no row lost"
    wait_until_done(ids)
    assert Face.objects.filter(photo_id__in=ids).count() == 20
    assert not any("locked" in error for _, error in statuses(ids).values())
    assert FailedJobRegistry(queue=get_queue(UPLOADS)).count == 0
    assert all(alive(worker) for worker in workers)
    # The server's and the workers' output. A worker logs "Job OK" just after the photo is done in the
    # database (and the last photos of the user's fair share are queued as the first ones end): read on
    # until every line is in.
    logs = ""

    def all_logged() -> bool:
        nonlocal logs
        logs += "".join(capfd.readouterr())
        return logs.count("Job OK (photo-") >= 20

    wait_for(all_logged, timeout=30)
    assert logs.count("Job OK (photo-") == 20, "the workers' logs are read"
    assert "database is locked" not in logs


# Backpressure


def test_past_the_queue_depth_uploads_wait_in_the_database_and_drain(api, client, user, redis_server, start_worker,
                                                                      settings, logs):  # fmt: skip
    settings.QUEUE_MAX_DEPTH = 2
    bodies = [upload(api, name) for name in SMALL_PHOTOS]
    assert [body["status"] for body in bodies] == ["queued"] * 2 + ["waiting"] * 4
    assert all("queue is full" in body["message"] for body in bodies[2:])
    assert get_queue(UPLOADS).count == 2
    client.force_login(user)
    assert "waiting" in client.get("/").content.decode().lower(), "the gallery says so"

    start_worker("--with-scheduler", QUEUE_MAX_DEPTH="2", **SCHEDULED)
    ids = [body["id"] for body in bodies]
    deepest = 0

    def drained() -> bool:
        nonlocal deepest
        deepest = max(deepest, get_queue(UPLOADS).count)
        return photos_finished(ids)

    wait_for(drained, timeout=240, interval=0.1)
    # Each job's end admits the owner's next waiting photo (fair share), within the depth limit.
    assert deepest <= 2, f"the queue stayed within its depth ({deepest} seen)"
    wait_until_done(ids)
    assert_ran_once(ids, logs)


# Timeouts


def test_job_past_its_timeout_fails_clearly_and_the_worker_goes_on(api, redis_server, start_worker, settings, logs):
    settings.JOB_TIMEOUT = 2  # the timeout the job is queued with
    stuck, _held = held_upload(api)  # never released: it can only time out
    quick = upload(api, SMALL_PHOTOS[0])["id"]
    worker = start_worker("--burst", JOB_TIMEOUT="2")
    assert worker.wait(timeout=300) == 0

    photo = Photo.objects.get(pk=stuck)
    assert photo.status == PhotoStatus.FAILED
    assert photo.error == "Timed out: processing took longer than 2 s"
    assert photo.attempts == 1, "a timeout is not retried"
    assert FailedJobRegistry(queue=get_queue(UPLOADS)).get_job_ids() == [f"photo-{stuck}"]
    wait_until_done([quick], timeout=10)
    assert_ran_once([quick], logs)


def test_redis_killed_while_a_job_runs(api, other_user, redis_server, start_worker, logs):
    """The job finishes while Redis is down: the photo is done in the database, once; the worker lives on and
    its scheduler (which lost its connection too) runs reconcile again once Redis is back."""
    photo_id, held = held_upload(api)
    worker = start_worker("--with-scheduler", **SCHEDULED)
    wait_until_processing(photo_id)
    redis_server.stop()
    held.release()
    wait_until_done([photo_id])
    redis_server.start()
    after = upload(api, SMALL_PHOTOS[0])["id"]
    # Another user's, so no job end of this user's admits it (fair share): only the scheduled reconcile can.
    waiting = stored_photo(other_user, "people/biden/senate.jpg")
    wait_until_done([after, waiting.pk])
    assert alive(worker)
    assert re.search(r"checked \d+ unfinished photos: queued 1 again", logs.read())
    photo = Photo.objects.get(pk=photo_id)
    assert photo.attempts == 1 and photo.faces.count() >= 8, "the job ran once"
    assert_ran_once([after, waiting.pk], logs)
