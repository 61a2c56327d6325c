"""Reconcile: photos whose job is gone are queued again; the worker runs it on RQ's scheduler."""

import logging
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from rq.job import Job, JobStatus

from jobs.enqueue import UPLOADS, enqueue_photos, get_queue, photo_job_id
from jobs.reconcile import SCHEDULED_JOB_ID, ensure_scheduled, reconcile
from recognition.models import Person, Photo, PhotoStatus, ReferencePhoto
from tests.conftest import photos_finished, stored_photo, upload_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def run_reconcile(*args: str) -> str:
    out = StringIO()
    call_command("reconcile", "--grace", "0", *args, stdout=out)
    return out.getvalue()


def test_after_flushall_every_unfinished_photo_is_queued_again_and_ends_done(api, user, redis_server, run_jobs):
    uploaded = [
        api.post("/api/photos/", {"image": upload_of(name)}).json()["id"]
        for name in ("people/obama/congress_address_2009.jpg", "nofaces/cat.png")
    ]
    waiting = stored_photo(user, "people/hayes/photo_2.jpg", status=PhotoStatus.WAITING)
    # A worker was killed mid-job: the photo says processing.
    killed = stored_photo(user, "people/biden/senate.jpg", status=PhotoStatus.PROCESSING, attempts=1)
    done = stored_photo(user, "nofaces/rocket.jpg", status=PhotoStatus.DONE)
    assert get_queue(UPLOADS).count == 2

    redis_server.client().flushall()
    assert get_queue(UPLOADS).count == 0
    output = run_reconcile()
    assert "checked 4 unfinished photos: queued 4 again" in output
    assert set(get_queue(UPLOADS).get_job_ids()) == {photo_job_id(pk) for pk in [*uploaded, waiting.pk, killed.pk]}
    assert Photo.objects.get(pk=done.pk).status == PhotoStatus.DONE

    run_jobs()
    ids = [*uploaded, waiting.pk, killed.pk]
    assert photos_finished(ids)
    assert set(Photo.objects.filter(pk__in=ids).values_list("status", flat=True)) == {PhotoStatus.DONE}
    assert "queued 0 again" in run_reconcile()


def test_photos_with_live_jobs_are_left_alone(user, redis_server):
    photos = [stored_photo(user) for _ in range(3)]
    sum(enqueue_photos([p.pk for p in photos], queue=UPLOADS))
    started = photos[0]
    Photo.objects.filter(pk=started.pk).update(status=PhotoStatus.PROCESSING, started_at=timezone.now())
    Job.fetch(photo_job_id(started.pk), connection=redis_server.client()).set_status(JobStatus.STARTED)
    outcome = reconcile(grace=0)
    assert outcome.checked == 3 and outcome.queued == [] and outcome.held == []
    assert get_queue(UPLOADS).count == 3


@pytest.fixture
def now(monkeypatch):
    """The clock stands still: half a second either side of a limit is exact, however slow the machine."""
    frozen = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: frozen)
    return frozen


@pytest.mark.parametrize(("seconds_ago", "queued"), [(60 - 0.5, False), (60 + 0.5, True)])
def test_the_grace_period_is_a_minute(user, redis_server, now, seconds_ago, queued):
    """A photo queued less than a minute ago may be between its database update and its push to Redis: the
    scheduled run and `manage.py reconcile` leave it alone; a minute on, its job is surely lost."""
    photo = stored_photo(user, status=PhotoStatus.QUEUED, queued_at=now - timedelta(seconds=seconds_ago))
    outcome = reconcile()
    assert (outcome.queued, outcome.recent) == (([photo.pk], 0) if queued else ([], 1))
    assert queued or "; left alone 1 unfinished photo queued within the last 60 s (" in str(outcome)


@pytest.mark.parametrize(("seconds_ago", "queued"), [(60 - 0.5, False), (60 + 0.5, True)])
def test_a_reference_photo_gets_the_same_minute_of_grace(user, redis_server, now, seconds_ago, queued):
    reference = ReferencePhoto.objects.create(person=Person.objects.create(owner=user, name="O"), image="r/x.jpg")
    ReferencePhoto.objects.filter(pk=reference.pk).update(updated_at=now - timedelta(seconds=seconds_ago))
    assert reconcile().references == ([reference.pk] if queued else [])


def reconcile_log(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "jobs.reconcile"]


@pytest.mark.parametrize(
    ("lost", "said"),
    [
        ("queued", "checked 1 unfinished photos: queued 1 again, 0 left waiting (queue full), 0 marked failed;"),
        ("held", "checked 1 unfinished photos: queued 0 again, 1 left waiting (queue full), 0 marked failed;"),
        ("failed", "checked 1 unfinished photos: queued 0 again, 0 left waiting (queue full), 1 marked failed;"),
        ("reference", "queued 1 reference photos and 0 alert deliveries again"),
    ],
)
def test_a_run_that_does_something_says_so_in_the_log_and_an_idle_run_says_nothing(
    user, redis_server, settings, caplog, lost, said
):
    """The fault tests read this line as the proof that reconcile ran; an idle scheduled run is silent."""
    long_ago = timezone.now() - timedelta(minutes=5)
    if lost == "held":
        settings.QUEUE_MAX_DEPTH = 0
    if lost in ("queued", "held"):
        stored_photo(user, status=PhotoStatus.QUEUED, queued_at=long_ago)
    elif lost == "failed":  # its worker stopped mid-job as many times as a job has tries
        stored_photo(user, status=PhotoStatus.PROCESSING, attempts=4, started_at=long_ago)
    else:
        person = Person.objects.create(owner=user, name="Obama")
        reference = ReferencePhoto.objects.create(person=person, image="references/x.jpg")
        ReferencePhoto.objects.filter(pk=reference.pk).update(updated_at=long_ago)
    with caplog.at_level(logging.INFO, logger="jobs.reconcile"):
        reconcile()
        [message] = reconcile_log(caplog)
        assert message.startswith("reconcile: ") and said in message
        caplog.clear()
        if lost == "held":
            Photo.objects.all().delete()
        reconcile()  # the job is queued now, or the photo given up: nothing to do
        assert reconcile_log(caplog) == []


@pytest.mark.parametrize(("grace", "recent"), [(0, 0), (1, 1)])
def test_only_a_grace_period_counts_photos_as_recently_queued(user, redis_server, now, grace, recent):
    """A grace of a second counts a photo queued this instant as left alone for being recent; with `--grace 0`
    the run says nothing of recent photos."""
    stored_photo(user, status=PhotoStatus.QUEUED, queued_at=now)
    outcome = reconcile(grace=grace)
    assert (outcome.queued, outcome.recent) == ([], recent)


def test_the_scheduled_run_leaves_no_result_and_a_failure_stays_a_day(redis_server):
    """Staff see a failed reconcile run in the admin's failed jobs for a day; a finished one leaves nothing."""
    ensure_scheduled(redis_server.client())
    job = Job.fetch(SCHEDULED_JOB_ID, connection=redis_server.client())
    assert (job.result_ttl, job.failure_ttl) == (0, 24 * 3600)


def test_recently_queued_photos_get_a_grace_period(user, redis_server):
    photo = stored_photo(user, status=PhotoStatus.QUEUED, queued_at=timezone.now())
    assert reconcile().queued == []
    Photo.objects.filter(pk=photo.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    assert reconcile().queued == [photo.pk]


def test_processing_past_the_job_timeout_is_queued_again(user, redis_server, settings):
    settings.JOB_TIMEOUT = 10
    long_ago = timezone.now() - timedelta(seconds=300)
    photo = stored_photo(user, status=PhotoStatus.PROCESSING, started_at=long_ago, attempts=1)
    sum(enqueue_photos([photo.pk], queue=UPLOADS))
    get_queue(UPLOADS).remove(photo_job_id(photo.pk))  # a worker took it...
    Photo.objects.filter(pk=photo.pk).update(status=PhotoStatus.PROCESSING, started_at=long_ago)
    # Its job says started, but its worker is gone: no horse runs past the job timeout.
    Job.fetch(photo_job_id(photo.pk), connection=redis_server.client()).set_status(JobStatus.STARTED)
    assert reconcile(grace=0).queued == [photo.pk]
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.QUEUED
    assert get_queue(UPLOADS).get_job_ids() == [photo_job_id(photo.pk)]


def test_the_queue_depth_limit_holds_the_rest_back(user, other_user, redis_server, run_jobs, settings):
    settings.QUEUE_MAX_DEPTH = 2
    # The held ones are another user's: the end of a user's job queues their own next photo at once.
    photos = [stored_photo(owner, "nofaces/cat.png", status=PhotoStatus.QUEUED) for owner in (user, user, other_user)]
    photos.append(stored_photo(other_user, "nofaces/cat.png", status=PhotoStatus.WAITING))
    outcome = reconcile(grace=0)
    assert outcome.queued == [photos[0].pk, photos[1].pk] and outcome.held == [photos[2].pk, photos[3].pk]
    assert Photo.objects.get(pk=photos[2].pk).status == PhotoStatus.WAITING
    assert "queue is full" in Photo.objects.get(pk=photos[2].pk).error
    run_jobs()
    assert reconcile(grace=0).queued == [photos[2].pk, photos[3].pk]
    run_jobs()
    assert photos_finished([p.pk for p in photos])


def test_a_photo_that_keeps_killing_its_worker_is_given_up(user, redis_server):
    photo = stored_photo(user, status=PhotoStatus.PROCESSING, attempts=4, started_at=timezone.now())
    outcome = reconcile(grace=0)
    assert outcome.failed == [photo.pk] and outcome.queued == []
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.FAILED and "Gave up" in photo.error


def test_dry_run_changes_nothing(user, redis_server):
    photo = stored_photo(user, status=PhotoStatus.WAITING)
    assert "Dry run" in run_reconcile("--dry-run")
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.WAITING
    assert get_queue(UPLOADS).count == 0


def test_one_scheduled_run_however_many_workers_ensure_it(redis_server, settings):
    settings.RECONCILE_INTERVAL = 600
    connection = redis_server.client()
    ensure_scheduled(connection)
    ensure_scheduled(connection)
    registry = get_queue(UPLOADS).scheduled_job_registry
    assert registry.get_job_ids() == [SCHEDULED_JOB_ID]
    Job.fetch(SCHEDULED_JOB_ID, connection=connection).set_status(JobStatus.FAILED)
    ensure_scheduled(connection)
    assert Job.fetch(SCHEDULED_JOB_ID, connection=connection).get_status() == JobStatus.SCHEDULED
    # A worker with a shorter interval brings the run forward; a longer one leaves it be.
    settings.RECONCILE_INTERVAL = 5
    ensure_scheduled(connection)
    settings.RECONCILE_INTERVAL = 600
    ensure_scheduled(connection)
    assert registry.get_job_ids() == [SCHEDULED_JOB_ID]
    assert connection.zscore(registry.key, SCHEDULED_JOB_ID) <= time.time() + 5


def test_the_worker_runs_reconcile_on_its_scheduler(user, start_worker):
    """No operator: a photo held back in the database is queued by the worker's scheduled reconcile."""
    photo = stored_photo(user, "nofaces/cat.png", status=PhotoStatus.WAITING)
    start_worker("--with-scheduler", RECONCILE_INTERVAL="1")
    wait_for(lambda: photos_finished([photo.pk]), timeout=120)
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.DONE


def test_a_reference_photo_whose_job_is_gone_is_encoded_after_all(api, redis_server, run_jobs):
    from recognition.models import ReferencePhoto, ReferenceStatus

    person_id = api.post("/api/people/", {"name": "Obama"}, format="json").json()["id"]
    api.post(f"/api/people/{person_id}/references/", {"image": upload_of("people/obama/portrait_2012.jpg")})
    redis_server.client().flushall()
    outcome = reconcile(grace=0)
    [reference] = ReferencePhoto.objects.filter(person_id=person_id)
    assert outcome.references == [reference.pk]
    assert reconcile(grace=0).references == []  # its job is queued now
    run_jobs()
    reference.refresh_from_db()
    assert reference.status == ReferenceStatus.DONE


def processing_with_job(user, redis_server, started_seconds_ago: float, job_status: str) -> Photo:
    """A processing photo whose job is in Redis with this status (as RQ leaves it)."""
    photo = stored_photo(user, status=PhotoStatus.PROCESSING, attempts=1)
    sum(enqueue_photos([photo.pk], queue=UPLOADS))
    get_queue(UPLOADS).remove(photo_job_id(photo.pk))
    started = timezone.now() - timedelta(seconds=started_seconds_ago)
    Photo.objects.filter(pk=photo.pk).update(status=PhotoStatus.PROCESSING, started_at=started, attempts=1)
    Job.fetch(photo_job_id(photo.pk), connection=redis_server.client()).set_status(job_status)
    return photo


@pytest.mark.parametrize("job_status", [JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.DEFERRED])
def test_a_retrying_photo_is_not_reconciled(user, redis_server, job_status):
    """A work horse killed mid-job leaves the photo processing and its retry scheduled: RQ will run it, so
    queueing it again would run it twice, however long ago it started."""
    photo = processing_with_job(user, redis_server, 3600, job_status)
    assert reconcile(grace=0).queued == []
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.PROCESSING


@pytest.mark.parametrize(("seconds_ago", "lost"), [(300 + 60 - 0.5, False), (300 + 60, False), (300 + 60 + 0.5, True)])
def test_a_started_job_is_lost_only_past_the_job_timeout_and_a_minute(
    user, redis_server, settings, now, seconds_ago, lost
):
    """A job may run JOB_TIMEOUT seconds; a minute more and its worker is surely gone."""
    settings.JOB_TIMEOUT = 300
    photo = processing_with_job(user, redis_server, seconds_ago, JobStatus.STARTED)
    assert reconcile(grace=0).queued == ([photo.pk] if lost else [])


@pytest.mark.parametrize("job_status", [None, JobStatus.FAILED, JobStatus.FINISHED, JobStatus.STOPPED])
def test_a_processing_photo_whose_job_is_over_or_gone_is_lost(user, redis_server, job_status):
    photo = stored_photo(user, status=PhotoStatus.PROCESSING, attempts=1, started_at=timezone.now())
    if job_status is not None:
        sum(enqueue_photos([photo.pk], queue=UPLOADS))
        get_queue(UPLOADS).remove(photo_job_id(photo.pk))
        Photo.objects.filter(pk=photo.pk).update(status=PhotoStatus.PROCESSING, attempts=1)
        Job.fetch(photo_job_id(photo.pk), connection=redis_server.client()).set_status(job_status)
    assert reconcile(grace=0).queued == [photo.pk]
    assert Photo.objects.get(pk=photo.pk).attempts == 1, "reconcile keeps the count of this run's tries"


@pytest.mark.parametrize(("attempts", "given_up"), [(3, False), (4, True)])
def test_given_up_after_as_many_runs_as_a_job_has_tries(user, redis_server, settings, attempts, given_up):
    """JOB_RETRY_INTERVALS gives a job 3 retries, so 4 tries: a photo that stopped its worker 4 times is failed."""
    settings.JOB_RETRY_INTERVALS = [10, 60, 300]
    photo = stored_photo(user, status=PhotoStatus.PROCESSING, attempts=attempts, started_at=timezone.now())
    outcome = reconcile(grace=0)
    assert (outcome.failed, outcome.queued) == (([photo.pk], []) if given_up else ([], [photo.pk]))


@pytest.mark.parametrize("queued", [2, 3])
def test_a_full_queue_takes_nothing_more(user, other_user, redis_server, settings, queued):
    """At the depth, or past it (the depth was lowered), the waiting photos stay waiting."""
    settings.QUEUE_MAX_DEPTH = 2
    sum(enqueue_photos([stored_photo(user).pk for _ in range(queued)], queue=UPLOADS))
    # Another user's: held by the depth alone, not by the first user's fair share.
    waiting = [stored_photo(other_user, status=PhotoStatus.WAITING).pk for _ in range(2)]
    outcome = reconcile(grace=0)
    assert outcome.queued == [] and outcome.held == waiting
    assert get_queue(UPLOADS).count == queued


def test_photos_queued_within_the_grace_period_are_counted_and_the_way_to_include_them_is_said(api, redis_server):
    for name in ("nofaces/cat.png", "nofaces/coffee.jpg"):
        api.post("/api/photos/", {"image": upload_of(name)})
    redis_server.client().flushall()
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert (
        out.getvalue()
        .strip()
        .endswith(
            "queued 0 again, 0 left waiting (queue full), 0 marked failed; queued 0 reference photos and 0 alert "
            "deliveries again; "
            "left alone 2 unfinished photos queued within the last 60 s "
            "(their job may still be on its way to Redis; --grace 0 includes them)"
        )
    )
    assert "queued 2 again" in run_reconcile()
