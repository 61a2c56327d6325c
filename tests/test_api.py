"""The API's upload path: rate limit per user, error bodies, what a held-back upload tells the user."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from jobs.enqueue import GALLERY, get_queue
from recognition.models import Alert, Person, Photo, PhotoStatus, ReferencePhoto, ReferenceStatus
from tests.conftest import upload_of

pytestmark = pytest.mark.django_db(transaction=True)

PHOTOS = ["people/obama/senate.jpg", "people/biden/senate.jpg", "people/clinton/senate.jpg", "people/harris/senate.jpg"]


@pytest.fixture(autouse=True)
def fresh_throttle_history():
    cache.clear()
    yield
    cache.clear()


def test_uploads_past_the_rate_limit_get_429(api, other_api, redis_server, settings):
    settings.UPLOAD_RATE_LIMIT = "3/hour"
    statuses = [api.post("/api/photos/", {"image": upload_of(name)}).status_code for name in PHOTOS]
    assert statuses == [202, 202, 202, 429]
    refused = api.post("/api/photos/", {"image": upload_of(PHOTOS[0])})
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("Request was throttled.")
    assert int(refused.headers["Retry-After"]) > 0
    assert Photo.objects.count() == 3, "nothing stored past the limit"
    # Per user: someone else still uploads, and reading is not limited.
    assert other_api.post("/api/photos/", {"image": upload_of(PHOTOS[3])}).status_code == 202
    assert api.get("/api/photos/").status_code == 200


def test_reference_uploads_share_the_limit(api, redis_server, settings):
    settings.UPLOAD_RATE_LIMIT = "1/hour"
    person = api.post("/api/people/", {"name": "Obama"}, format="json").json()
    url = f"/api/people/{person['id']}/references/"
    assert api.post(url, {"image": upload_of("people/obama/portrait_2012.jpg")}).status_code == 202
    assert api.post(url, {"image": upload_of("people/obama/senate.jpg")}).status_code == 429


@pytest.mark.parametrize(
    ("method", "url", "status", "error"),
    [
        ("get", "/api/photos/999999/", 404, "No Photo matches the given query."),
        ("post", "/api/people/", 400, "name: This field is required."),
        ("put", "/api/photos/1/", 405, 'Method "PUT" not allowed.'),
    ],
)
def test_every_error_body_has_an_error_string(api, redis_server, method, url, status, error):
    response = getattr(api, method)(url, {}, format="json")
    assert response.status_code == status
    assert response.json()["error"] == error


def test_anonymous_error_body(client, db):
    response = client.post("/api/photos/")
    assert response.status_code in (401, 403)
    assert response.json()["error"] == "Authentication credentials were not provided."


def test_upload_past_the_queue_depth_is_stored_and_told_it_waits(api, redis_server, settings):
    settings.QUEUE_MAX_DEPTH = 1
    first = api.post("/api/photos/", {"image": upload_of(PHOTOS[0])})
    second = api.post("/api/photos/", {"image": upload_of(PHOTOS[1])})
    assert first.status_code == second.status_code == 202
    assert first.json()["status"] == "queued" and "message" not in first.json()
    assert second.json()["status"] == "waiting"
    assert second.json()["message"] == (
        "Stored, not lost: the queue is full, this photo is queued as the backlog drains."
    )
    assert Photo.objects.get(pk=second.json()["id"]).status == PhotoStatus.WAITING


def test_deleting_a_person_queues_a_rematch(api, redis_server):
    person = api.post("/api/people/", {"name": "Obama"}, format="json").json()
    assert api.delete(f"/api/people/{person['id']}/").status_code == 204
    [job] = get_queue(GALLERY).get_jobs()
    assert job.func_name == "jobs.rematch.rematch_faces"


# The API table of the README, call by call.


def photo_with_status(user, status: str) -> Photo:
    return Photo.objects.create(owner=user, image=f"photos/x/{status}.jpg", status=status)


def test_photo_list_filters_by_status_and_pages(api, user, other_user):
    done = [photo_with_status(user, PhotoStatus.DONE).pk for _ in range(2)]
    failed = photo_with_status(user, PhotoStatus.FAILED).pk
    photo_with_status(other_user, PhotoStatus.DONE)
    body = api.get("/api/photos/?status=done").json()
    assert body["count"] == 2 and sorted(photo["id"] for photo in body["results"]) == sorted(done)
    assert [photo["id"] for photo in api.get("/api/photos/?status=failed").json()["results"]] == [failed]
    assert api.get("/api/photos/").json()["count"] == 3
    assert set(body) >= {"count", "next", "previous", "results"}


def test_a_person_with_references_and_their_status(api, user, other_user):
    person = Person.objects.create(owner=user, name="Obama")
    done = ReferencePhoto.objects.create(person=person, image="references/x/a.jpg", status=ReferenceStatus.DONE)
    failed = ReferencePhoto.objects.create(
        person=person, image="references/x/b.jpg", status=ReferenceStatus.FAILED, error="no face found"
    )
    body = api.get(f"/api/people/{person.pk}/").json()
    assert body["id"] == person.pk and body["name"] == "Obama"
    assert [(ref["id"], ref["status"], ref["error"]) for ref in body["references"]] == [
        (done.pk, "done", ""),
        (failed.pk, "failed", "no face found"),
    ]
    theirs = Person.objects.create(owner=other_user, name="Theirs")
    assert api.get(f"/api/people/{theirs.pk}/").status_code == 404


def test_alerts_newest_first_and_marked_seen(api, user, other_user):
    person = Person.objects.create(owner=user, name="Obama")
    photos = [photo_with_status(user, PhotoStatus.DONE) for _ in range(3)]
    alerts = [Alert.objects.create(owner=user, photo=photo, person=person) for photo in photos]
    # Created in this order but at these times: the list follows the times, not the ids.
    now = timezone.now()
    for alert, minutes_ago in zip(alerts, [5, 1, 10], strict=True):
        Alert.objects.filter(pk=alert.pk).update(created_at=now - timedelta(minutes=minutes_ago))
    body = api.get("/api/alerts/").json()
    assert [alert["id"] for alert in body["results"]] == [alerts[1].pk, alerts[0].pk, alerts[2].pk]
    assert not any(alert["seen"] for alert in body["results"])

    response = api.post(f"/api/alerts/{alerts[0].pk}/seen/")
    assert response.status_code == 200 and response.json() == {"id": alerts[0].pk, "seen": True}
    assert list(Alert.objects.filter(seen=True).values_list("pk", flat=True)) == [alerts[0].pk]
    assert [alert["id"] for alert in api.get("/api/alerts/?unseen=1").json()["results"]] == [
        alerts[1].pk,
        alerts[2].pk,
    ]
    theirs = Alert.objects.create(
        owner=other_user, photo=photo_with_status(other_user, "done"), person=Person.objects.create(owner=other_user)
    )
    assert api.post(f"/api/alerts/{theirs.pk}/seen/").status_code == 404
    assert not Alert.objects.get(pk=theirs.pk).seen
