"""The API's upload path: rate limit per user, error bodies, what a held-back upload tells the user."""

from __future__ import annotations

import pytest

from jobs.enqueue import GALLERY, get_queue
from recognition.models import Photo, PhotoStatus
from tests.conftest import upload_of

pytestmark = pytest.mark.django_db(transaction=True)

PHOTOS = ["people/obama/senate.jpg", "people/biden/senate.jpg", "people/clinton/senate.jpg", "people/harris/senate.jpg"]


def test_uploads_past_the_rate_limit_get_429(api, other_api, redis_server, settings):
    settings.UPLOAD_RATE_LIMIT = "3/hour"
    statuses = [api.post("/api/photos/", {"image": upload_of(name)}).status_code for name in PHOTOS]
    assert statuses == [202, 202, 202, 429]
    refused = api.post("/api/photos/", {"image": upload_of(PHOTOS[0])})
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("Too many uploads: the limit is 3/hour. Try again in ")
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
