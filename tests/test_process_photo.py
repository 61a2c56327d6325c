"""The upload pipeline end to end: API upload, a real Redis, a real RQ worker, real photos."""

import os
import time

import pytest
from django.core import mail
from django.core.management import call_command
from rq.registry import ScheduledJobRegistry

from alerts.models import AlertSettings
from jobs.enqueue import UPLOADS, get_queue, photo_job_id
from recognition.models import Alert, Person, Photo, PhotoStatus, ReferenceStatus
from tests.conftest import upload_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.scaleout]


def add_person(api, run_jobs, name: str, *references: str) -> Person:
    person_id = api.post("/api/people/", {"name": name}, format="json").json()["id"]
    for reference in references:
        response = api.post(f"/api/people/{person_id}/references/", {"image": upload_of(reference)})
        assert response.status_code == 202, response.content
    run_jobs()
    person = Person.objects.get(pk=person_id)
    assert all(ref.status == ReferenceStatus.DONE for ref in person.references.all())
    return person


def upload(api, relative: str) -> int:
    response = api.post("/api/photos/", {"image": upload_of(relative)})
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_known_person_is_found_and_alerted(api, user, run_jobs):
    # Alerts are emailed to a confirmed address only (tests/test_email.py).
    AlertSettings.objects.create(user=user, email_address=user.email, email_confirmed=user.email)
    obama = add_person(api, run_jobs, "Obama", "people/obama/portrait_2012.jpg")
    photo_id = upload(api, "people/obama/congress_address_2009.jpg")
    assert Photo.objects.get(pk=photo_id).status == PhotoStatus.QUEUED
    run_jobs()

    body = api.get(f"/api/photos/{photo_id}/").json()
    assert body["status"] == "done" and body["error"] == ""
    assert (body["width"], body["height"]) == (626, 1200)
    [face] = body["faces"]
    assert face["person"] == {"id": obama.pk, "name": "Obama"}
    assert 0 < face["distance"] < 0.45
    assert set(face["box"]) == {"top", "right", "bottom", "left"}

    alert = Alert.objects.get(photo_id=photo_id)
    assert alert.person == obama and alert.owner == user
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    assert "Obama" in mail.outbox[0].subject
    assert Photo.objects.get(pk=photo_id).thumbnail


def test_group_photo_names_obama_and_biden(api, run_jobs):
    add_person(api, run_jobs, "Obama", "people/obama/portrait_2012.jpg")
    add_person(api, run_jobs, "Biden", "people/biden/vp_portrait_2013.jpg")
    photo_id = upload(api, "groups/situation_room_2011.jpg")
    run_jobs()
    faces = api.get(f"/api/photos/{photo_id}/").json()["faces"]
    assert len(faces) >= 8
    names = [face["person"]["name"] for face in faces if face["person"]]
    assert sorted(names) == ["Biden", "Obama"]


@pytest.mark.parametrize("name", ["cat.png", "rocket.jpg", "coffee.jpg", "brick.png", "grass.png"])
def test_photos_without_faces_end_done_with_none(api, run_jobs, name):
    photo_id = upload(api, f"nofaces/{name}")
    run_jobs()
    body = api.get(f"/api/photos/{photo_id}/").json()
    assert body["status"] == "done" and body["faces"] == []


def test_a_stranger_is_not_matched(api, run_jobs):
    add_person(api, run_jobs, "Obama", "people/obama/portrait_2012.jpg")
    add_person(api, run_jobs, "Biden", "people/biden/vp_portrait_2013.jpg")
    photo_id = upload(api, "portraits/029701.jpg")
    run_jobs()
    [face] = api.get(f"/api/photos/{photo_id}/").json()["faces"]
    assert face["person"] is None
    assert not Alert.objects.exists()


def test_truncated_jpeg_fails_readably_and_the_worker_goes_on(api, run_jobs):
    data = upload_of("people/obama/portrait_2012.jpg").read()
    from django.core.files.uploadedfile import SimpleUploadedFile

    broken = SimpleUploadedFile("broken.jpg", data[: len(data) // 2], content_type="image/jpeg")
    broken_id = api.post("/api/photos/", {"image": broken}).json()["id"]
    good_id = upload(api, "people/biden/senate.jpg")
    run_jobs(expect_failures=True)
    broken_photo = Photo.objects.get(pk=broken_id)
    assert broken_photo.status == PhotoStatus.FAILED
    assert "Unreadable image" in broken_photo.error and "this file is damaged (it ends early)" in broken_photo.error
    assert broken_photo.attempts == 1  # an unreadable image is never retried
    assert Photo.objects.get(pk=good_id).status == PhotoStatus.DONE


def test_reprocessing_is_harmless(api, run_jobs):
    add_person(api, run_jobs, "Obama", "people/obama/portrait_2012.jpg")
    photo_id = upload(api, "groups/obama_biden.jpg")
    run_jobs()
    first = sorted(tuple(f["box"].values()) for f in api.get(f"/api/photos/{photo_id}/").json()["faces"])
    assert api.post(f"/api/photos/{photo_id}/reprocess/").status_code == 202
    run_jobs()
    photo = Photo.objects.get(pk=photo_id)
    second = sorted(tuple(f["box"].values()) for f in api.get(f"/api/photos/{photo_id}/").json()["faces"])
    assert photo.status == PhotoStatus.DONE and photo.attempts == 1  # attempts count this run
    assert first == second and photo.faces.count() == 2
    assert Alert.objects.filter(photo=photo).count() == 1


def test_a_new_reference_rematches_without_detecting_again(api, run_jobs):
    photo_id = upload(api, "groups/obama_biden.jpg")
    run_jobs()
    photo = Photo.objects.get(pk=photo_id)
    face_ids = set(photo.faces.values_list("pk", flat=True))
    assert not photo.faces.filter(person__isnull=False).exists()
    add_person(api, run_jobs, "Biden", "people/biden/vp_portrait_2013.jpg")
    photo.refresh_from_db()
    assert photo.attempts == 1  # not detected again
    assert set(photo.faces.values_list("pk", flat=True)) == face_ids
    assert photo.people_names() == ["Biden"]
    assert Alert.objects.filter(photo=photo, person__name="Biden").count() == 1


def test_a_transient_error_retries_with_backoff(api, run_jobs, redis_server):
    """A missing file may come back (a storage outage): the job is scheduled again, the photo says so."""
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry

    from jobs.enqueue import UPLOADS, get_queue, photo_job_id

    photo_id = upload(api, "people/obama/senate.jpg")
    photo = Photo.objects.get(pk=photo_id)
    saved = photo.image.path + ".saved"
    os.rename(photo.image.path, saved)
    run_jobs(expect_failures=True)
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.QUEUED and photo.error.startswith("Retrying after a transient error")
    queue = get_queue(UPLOADS)
    assert photo_job_id(photo_id) in ScheduledJobRegistry(queue=queue).get_job_ids()
    assert photo_job_id(photo_id) not in FailedJobRegistry(queue=queue).get_job_ids()

    os.rename(saved, photo.image.path)
    queue.enqueue_job(queue.fetch_job(photo_job_id(photo_id)))  # the backoff has passed
    run_jobs()
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.DONE and photo.attempts == 2


def test_transient_errors_back_off_by_the_retry_intervals_then_fail(api, run_jobs, redis_server, settings):
    """JOB_RETRY_INTERVALS (10, 60, 300 s by default): each retry is scheduled that far ahead; after the last,
    the photo fails with the reason."""
    assert settings.JOB_RETRY_INTERVALS == [10, 60, 300]
    photo_id = upload(api, "people/obama/senate.jpg")
    photo = Photo.objects.get(pk=photo_id)
    os.remove(photo.image.path)  # gone from storage, maybe for a while: a transient error
    queue = get_queue(UPLOADS)
    scheduled = ScheduledJobRegistry(queue=queue)
    for interval in settings.JOB_RETRY_INTERVALS:
        before = time.time()
        run_jobs(expect_failures=True)
        at = redis_server.client().zscore(scheduled.key, photo_job_id(photo_id))
        assert at is not None, "the retry is scheduled"
        assert before + interval - 1 <= at <= time.time() + interval + 1
        assert Photo.objects.get(pk=photo_id).status == PhotoStatus.QUEUED
        scheduled.remove(photo_job_id(photo_id))
        queue.enqueue_job(queue.fetch_job(photo_job_id(photo_id)))  # as if the interval had passed
    run_jobs(expect_failures=True)
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.FAILED and photo.error.startswith("FileNotFoundError")
    assert photo.attempts == 4
    assert scheduled.count == 0 and queue.failed_job_registry.get_job_ids() == [photo_job_id(photo_id)]


def test_a_second_rematch_sends_nothing(api, user, run_jobs):
    """Gallery changes and bulk re-matches find Obama again in a photo he was already found in: no new alert,
    no second email."""
    AlertSettings.objects.create(user=user, email_address=user.email, email_confirmed=user.email)
    obama = add_person(api, run_jobs, "Obama", "people/obama/portrait_2012.jpg")
    photo_id = upload(api, "people/obama/congress_address_2009.jpg")
    run_jobs()
    [alert] = Alert.objects.filter(photo_id=photo_id)
    assert len(mail.outbox) == 1

    another = api.post(f"/api/people/{obama.pk}/references/", {"image": upload_of("people/obama/senate.jpg")})
    assert another.status_code == 202
    assert run_jobs() == 2  # the encoding, then the re-match it queues
    call_command("reprocess", "--all", "--rematch-only", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert run_jobs() == 1

    assert list(Alert.objects.values_list("pk", flat=True)) == [alert.pk]
    assert len(mail.outbox) == 1
    assert Photo.objects.get(pk=photo_id).people_names() == ["Obama"]


def test_capture_date_from_exif_else_the_upload_time(api, run_jobs):
    dated = upload(api, "people/obama/portrait_2012.jpg")  # EXIF DateTimeOriginal 2012:12:06 15:46:01, no offset
    undated = upload(api, "groups/obama_biden.jpg")  # no EXIF date
    run_jobs()
    body = api.get(f"/api/photos/{dated}/").json()
    assert body["taken_at"] == "2012-12-06T15:46:01Z" and body["taken_at_source"] == "exif"  # TIME_ZONE is UTC
    photo = Photo.objects.get(pk=undated)
    assert photo.taken_at == photo.created_at and photo.taken_at_source == "upload"
    # Newest taken first: the photo uploaded today comes before the one taken in 2012.
    assert [p["id"] for p in api.get("/api/photos/").json()["results"]] == [undated, dated]
