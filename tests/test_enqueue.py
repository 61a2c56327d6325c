"""Putting work on the queues: one job per photo, a new run's count, backpressure on uploads only, pausing;
and fair share of the workers: one user's backlog costs another user a few photos' wait, not the backlog."""

from __future__ import annotations

import socket

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count
from rq.job import Job, JobStatus

from jobs.enqueue import (
    BULK,
    FAIR_SHARE_WAIT,
    GALLERY,
    QUEUE_FULL,
    REDIS_DOWN,
    REFERENCE_WAITING,
    UPLOADS,
    admit_waiting,
    enqueue_grouping,
    enqueue_photo,
    enqueue_photos,
    enqueue_reference,
    enqueue_regrouping,
    enqueue_rematch,
    enqueue_renditions,
    fair_share,
    get_queue,
    grouping_job_ids,
    pause_queue,
    paused_queues,
    photo_job_id,
    resume_queue,
    waiting_within_share,
)
from recognition.models import Person, Photo, PhotoStatus, ReferencePhoto
from tests.conftest import FACES, photos_finished, stored_photo, upload_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_photo_goes_on_its_queue_once_with_its_fixed_job_id(user, redis_server):
    photo = stored_photo(user, status=PhotoStatus.FAILED, attempts=3, error="Timed out")
    enqueue_photo(photo)
    enqueue_photo(photo)  # a second click: the same job, not two
    assert get_queue(UPLOADS).get_job_ids() == [photo_job_id(photo.pk)]
    job = get_queue(UPLOADS).fetch_job(photo_job_id(photo.pk))
    assert job.args == (photo.pk,) and job.meta == {"photo_id": photo.pk} and job.retries_left == 3
    assert job.failure_ttl == 7 * 24 * 3600, "a failed job stays a week on the Queues page"
    photo.refresh_from_db()
    assert (photo.status, photo.error, photo.attempts) == (PhotoStatus.QUEUED, "", 0), "a new run"
    assert photo.queued_at is not None


@pytest.mark.parametrize(("already_queued", "status"), [(1, PhotoStatus.QUEUED), (2, PhotoStatus.WAITING)])
def test_uploads_wait_in_the_database_from_the_queue_depth_on(user, redis_server, settings, already_queued, status):
    settings.QUEUE_MAX_DEPTH = 2
    sum(enqueue_photos([stored_photo(user).pk for _ in range(already_queued)], queue=UPLOADS))
    photo = stored_photo(user)
    enqueue_photo(photo)
    photo.refresh_from_db()
    assert photo.status == status
    assert photo.error == ("" if status == PhotoStatus.QUEUED else QUEUE_FULL)


@pytest.mark.parametrize("queue", [GALLERY, BULK])
def test_the_depth_limit_is_for_uploads_only(user, redis_server, settings, queue):
    settings.QUEUE_MAX_DEPTH = 1
    sum(enqueue_photos([stored_photo(user).pk], queue=UPLOADS))
    photo = stored_photo(user)
    enqueue_photo(photo, queue)
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.QUEUED
    assert get_queue(queue).get_job_ids() == [photo_job_id(photo.pk)]


def test_a_bulk_run_starts_the_count_again_and_reconcile_keeps_it(user, redis_server):
    fresh, lost = stored_photo(user, attempts=2), stored_photo(user, attempts=2)
    assert list(enqueue_photos([fresh.pk], queue=BULK)) == [1]
    assert list(enqueue_photos([lost.pk], queue=UPLOADS, new_run=False)) == [1]
    assert Photo.objects.get(pk=fresh.pk).attempts == 0 and Photo.objects.get(pk=lost.pk).attempts == 2


def test_batches_of_the_given_size(user, redis_server):
    ids = [stored_photo(user).pk for _ in range(5)]
    assert list(enqueue_photos(ids, queue=BULK, batch_size=2)) == [2, 2, 1]
    assert get_queue(BULK).count == 5


def test_pause_and_resume_name_real_queues_only(redis_server):
    pause_queue(BULK)
    pause_queue(UPLOADS)
    assert paused_queues() == {BULK, UPLOADS}
    assert paused_queues(redis_server.client()) == {BULK, UPLOADS}
    resume_queue(UPLOADS)
    assert paused_queues() == {BULK}
    with pytest.raises(ValueError, match="unknown queue 'urgent'"):
        pause_queue("urgent")
    assert paused_queues() == {BULK}


def test_a_photo_queued_in_bulk_moves_to_the_uploads_queue_once(user, redis_server):
    photo = stored_photo(user)
    sum(enqueue_photos([photo.pk], queue=BULK))
    enqueue_photo(photo, UPLOADS)  # the user asks for it now
    assert get_queue(BULK).get_job_ids() == [] and get_queue(UPLOADS).get_job_ids() == [photo_job_id(photo.pk)]


def take_redis_down(settings) -> None:
    """Point every queue at a port where nothing listens: each Redis call fails at once."""
    settings.RQ_QUEUES = {name: {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 5} for name in settings.RQ_QUEUES}


def test_with_redis_down_photos_and_references_wait_in_the_database(user, redis_server, settings):
    take_redis_down(settings)
    photo = stored_photo(user, status=PhotoStatus.FAILED)
    enqueue_photo(photo)
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.WAITING
    assert photo.error == "waiting: the job queue is unavailable, this photo will be processed later"
    reference = ReferencePhoto.objects.create(person=Person.objects.create(owner=user, name="O"), image="r/x.jpg")
    enqueue_reference(reference.pk)
    assert ReferencePhoto.objects.get(pk=reference.pk).error == REFERENCE_WAITING


@pytest.fixture
def silent_redis():
    """A Redis host that hangs: its port takes connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_a_redis_that_never_answers_holds_an_upload_no_longer_than_the_socket_timeout(
    user, redis_server, settings, silent_redis
):
    """REDIS_SOCKET_TIMEOUT: past it the upload goes on and its photo waits in the database, as in an outage."""
    settings.REDIS_SOCKET_TIMEOUT = 0.2
    settings.RQ_QUEUES = {name: {"URL": silent_redis, "DEFAULT_TIMEOUT": 5} for name in settings.RQ_QUEUES}
    photo = stored_photo(user, status=PhotoStatus.FAILED)
    enqueue_photo(photo)
    photo.refresh_from_db()
    assert (photo.status, photo.error) == (PhotoStatus.WAITING, REDIS_DOWN)


def test_the_pictures_of_a_photo_are_asked_for_once_per_ten_minutes(redis_server, settings):
    """Media views ask for missing pictures on every request: one job, then nothing for RENDITIONS_PENDING_TTL
    (10 minutes, the key's expiry); with Redis down, nothing (a later request asks again)."""
    client = redis_server.client()

    def server_ms() -> int:
        seconds, micros = client.time()
        return seconds * 1000 + micros // 1000

    before = server_ms()
    assert enqueue_renditions("photo", 7) is True
    assert (enqueue_renditions("photo", 7), enqueue_renditions("reference", 7)) == (False, True)
    left, after = client.pttl("photosite:renditions:photo:7"), server_ms()
    assert 600_000 - (after - before) <= left <= 600_000
    jobs = get_queue(BULK).jobs
    assert [(job.func_name, job.args) for job in jobs] == [
        ("jobs.make_renditions.make_photo_renditions", (7,)),
        ("jobs.make_renditions.make_reference_renditions", (7,)),
    ]
    take_redis_down(settings)
    assert enqueue_renditions("photo", 8) is False


def portraits(count: int) -> list[str]:
    return sorted(f"portraits/{path.name}" for path in (FACES / "portraits").glob("*.jpg"))[:count]


def test_a_users_backlog_waits_its_turn_in_the_database(api, user, redis_server, run_jobs):
    share = fair_share()
    bodies = [api.post("/api/photos/", {"image": upload_of(name)}).json() for name in portraits(share + 3)]
    assert [body["status"] for body in bodies] == ["queued"] * share + ["waiting"] * 3
    assert bodies[-1]["message"] == f"Stored, not lost: {FAIR_SHARE_WAIT.removeprefix('waiting: ')}."
    assert get_queue(UPLOADS).count == share
    run_jobs()  # each job's end queues the next waiting photo: all of them end done
    assert set(Photo.objects.values_list("status", flat=True)) == {PhotoStatus.DONE}


@pytest.mark.parametrize(("in_flight", "admitted"), [(2, 2), (3, 1), (4, 0), (5, 0)])
def test_waiting_photos_take_only_the_room_left_in_their_owners_share(
    user, redis_server, settings, in_flight, admitted
):
    """A share of 4: with 3 photos in flight one more goes; at 4, or past it (the share was lowered), none.
    Reconcile asks the same (waiting_within_share) as a job's end (admit_waiting)."""
    settings.FAIR_SHARE_JOBS = 4
    sum(enqueue_photos([stored_photo(user).pk for _ in range(in_flight)], queue=UPLOADS))
    # Held after a transient failure, say: queued again, a photo starts its tries afresh.
    waiting = [stored_photo(user, status=PhotoStatus.WAITING, attempts=1).pk for _ in range(3)]
    assert waiting_within_share(waiting) == set(waiting[:admitted])
    assert admit_waiting(user.pk) == admitted
    queued = Photo.objects.filter(pk__in=waiting, status=PhotoStatus.QUEUED).order_by("pk")
    assert list(queued.values_list("pk", flat=True)) == waiting[:admitted]
    assert set(queued.values_list("attempts", flat=True)) <= {0}


def test_nothing_waiting_admits_nothing(user, redis_server):
    stored_photo(user, status=PhotoStatus.DONE)
    assert admit_waiting(user.pk) == 0


def test_another_users_upload_is_done_after_a_few_photos_not_after_the_backlog(
    api, other_api, user, other_user, redis_server, start_worker
):
    start_worker()
    third = get_user_model().objects.create_user("carol", "carol@example.com", "a third long password")
    bulk = [stored_photo(third, name).pk for name in portraits(210)[200:]]
    sum(enqueue_photos(bulk, queue=BULK))  # bulk reprocessing waits below everyone's uploads
    backlog = [api.post("/api/photos/", {"image": upload_of(name)}).status_code for name in portraits(200)]
    assert backlog == [202] * 200
    theirs = other_api.post("/api/photos/", {"image": upload_of("people/obama/senate.jpg")}).json()
    assert theirs["status"] == "queued"
    wait_for(lambda: photos_finished([theirs["id"]]), timeout=120)

    photo = Photo.objects.get(pk=theirs["id"])
    assert photo.status == PhotoStatus.DONE
    ahead = Photo.objects.filter(owner=user, processed_at__gt=photo.queued_at, processed_at__lt=photo.processed_at)
    assert ahead.count() <= fair_share() + 1, "at most the backlog's share went first"
    backlog_left = Photo.objects.filter(owner=user).exclude(status__in=["done", "failed"]).count()
    assert backlog_left > 100, "done long before the backlog"
    counts = dict(Photo.objects.filter(pk__in=bulk).values_list("status").annotate(n=Count("pk")))
    assert counts == {PhotoStatus.QUEUED: 10}, "no bulk job ran while uploads were queued"


def test_a_second_click_keeps_the_photos_place_in_the_queue(user, redis_server):
    first, second = stored_photo(user), stored_photo(user)
    for photo in (first, second, first):
        enqueue_photo(photo, UPLOADS)
    assert get_queue(UPLOADS).get_job_ids() == [photo_job_id(first.pk), photo_job_id(second.pk)]


def test_a_rematch_marks_the_photos_pending_until_it_runs(user, redis_server, django_capture_on_commit_callbacks):
    photo = stored_photo(user, status=PhotoStatus.DONE)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_rematch(user.pk)
    assert Photo.objects.get(pk=photo.pk).rematch_pending
    assert get_queue(GALLERY).count == 1


def test_with_redis_down_a_rematch_leaves_nothing_pending(user, settings, django_capture_on_commit_callbacks):
    """The gallery would say "matching..." for ever: the re-match waits for the next change instead."""
    take_redis_down(settings)
    photo = stored_photo(user, status=PhotoStatus.DONE)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_rematch(user.pk)
    assert not Photo.objects.get(pk=photo.pk).rematch_pending


def test_a_grouping_run_after_one_that_fails_still_runs(user, redis_server, django_capture_on_commit_callbacks):
    """The next run waits for the running one (an RQ dependency) but not for its success."""
    running_id, next_id = grouping_job_ids(user.pk)
    queue = get_queue(GALLERY)
    running = Job.create("jobs.group_faces.group_faces", args=(user.pk,), id=running_id, connection=queue.connection)
    running.save()
    running.set_status(JobStatus.STARTED)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_grouping(user.pk)
    waiting = Job.fetch(next_id, connection=queue.connection)
    assert waiting.get_status() == JobStatus.DEFERRED and waiting.allow_dependency_failures


def test_with_redis_down_new_faces_wait_for_the_next_grouping_run(user, settings, django_capture_on_commit_callbacks):
    """The photo job that found them still ends done: grouping's push never fails the commit."""
    take_redis_down(settings)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_grouping(user.pk)  # no error


def test_a_queued_regrouping_shows_no_progress_yet(user, redis_server):
    """The groups page draws its progress bar from the job: queued, it is empty."""
    job = enqueue_regrouping(user.pk)
    assert Job.fetch(job.id, connection=redis_server.client()).meta == {"owner_id": user.pk, "progress": 0.0}
