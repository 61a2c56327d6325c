"""The API's upload path: rate limit per user, error bodies, what a held-back upload tells the user."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from jobs.enqueue import GALLERY, get_queue
from recognition import engine
from recognition.models import Alert, Face, FaceGroup, Person, Photo, PhotoStatus, ReferencePhoto, ReferenceStatus
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


# Groups of unknown faces ("Who is this?"): the contract of /api/groups/.


def grouped_faces(owner, sizes: list[int], hidden: tuple[int, ...] = ()) -> list[FaceGroup]:
    """Groups of the given sizes, each face in a photo of its own (no photo files needed)."""
    groups = []
    for number, size in enumerate(sizes):
        group = FaceGroup.objects.create(owner=owner, hidden=number in hidden)
        for k in range(size):
            photo = Photo.objects.create(owner=owner, image=f"photos/x/{number}-{k}.jpg", status=PhotoStatus.DONE,
                                         width=100, height=100)  # fmt: skip
            Face.objects.create(photo=photo, group=group, top=10, left=10 + k, bottom=60, right=60 + k,
                                encoding=engine.encoding_to_bytes(np.full(128, 0.01 * number, np.float32)))  # fmt: skip
        groups.append(group)
    return groups


def test_groups_are_listed_largest_first_with_up_to_six_faces(api, user):
    small, big, hidden, tiny = grouped_faces(user, [3, 8, 5, 2], hidden=(2,))
    body = api.get("/api/groups/").json()
    assert body["count"] == 2 and [g["id"] for g in body["results"]] == [big.pk, small.pk]  # tiny: under 3
    first = body["results"][0]
    assert set(first) >= {"id", "size", "faces", "suggestion"} and first["size"] == 8 and len(first["faces"]) == 6
    face = first["faces"][0]
    assert set(face) == {"id", "photo", "box"} and set(face["box"]) == {"top", "right", "bottom", "left"}
    assert first["suggestion"] is None
    assert [g["id"] for g in api.get("/api/groups/?hidden=1").json()["results"]] == [hidden.pk]

    detail = api.get(f"/api/groups/{big.pk}/").json()
    assert detail["size"] == 8
    assert {f["id"] for f in detail["faces"]} == set(big.faces.values_list("pk", flat=True))


def test_naming_a_group_validates_the_name_and_changes_nothing_when_refused(api, user, other_user, redis_server):
    [group] = grouped_faces(user, [3])
    theirs = Person.objects.create(owner=other_user, name="Theirs")
    for body in ({"name": ""}, {"name": "   "}, {"name": "x" * 201}, {}, {"name": "A", "person": 1},
                 {"person": theirs.pk}, {"person": "abc"}, {"name": 5}):  # fmt: skip
        response = api.post(f"/api/groups/{group.pk}/name/", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"], body
    assert not Person.objects.filter(owner=user).exists() and group.unknown_faces().count() == 3

    response = api.post(f"/api/groups/{group.pk}/name/", {"name": " Ann "}, format="json")
    assert response.status_code == 200
    ann = Person.objects.get(owner=user)
    assert response.json() == {"person": {"id": ann.pk, "name": "Ann"}, "faces_named": 3}
    assert not FaceGroup.objects.filter(pk=group.pk).exists()
    assert Face.objects.filter(person=ann, named_by_user=True).count() == 3
    assert [job.func_name for job in get_queue(GALLERY).get_jobs()] == ["jobs.rematch.rematch_faces"]

    [second] = grouped_faces(user, [4])
    response = api.post(f"/api/groups/{second.pk}/name/", {"person": ann.pk}, format="json")
    assert response.json() == {"person": {"id": ann.pk, "name": "Ann"}, "faces_named": 4}


def test_remove_merge_and_hide(api, user, other_user):
    first, second = grouped_faces(user, [5, 4])
    [theirs] = grouped_faces(other_user, [3])
    faces = list(first.faces.values_list("pk", flat=True))
    for body in ({"faces": []}, {"faces": "1"}, {"faces": [faces[0], theirs.faces.first().pk]}, {"faces": [10**9]},
                 {"faces": [second.faces.first().pk]}, {}):  # fmt: skip
        response = api.post(f"/api/groups/{first.pk}/remove/", body, format="json")
        assert response.status_code == 400 and response.json()["error"], body
    assert first.unknown_faces().count() == 5 and not Face.excluded_groups.through.objects.exists()
    response = api.post(f"/api/groups/{first.pk}/remove/", {"faces": faces[:2]}, format="json")
    assert response.status_code == 200 and response.json()["size"] == 3 and response.json()["removed"] == 2

    for into in (theirs.pk, first.pk, 10**9, None, "x"):
        response = api.post(f"/api/groups/{first.pk}/merge/", {"into": into}, format="json")
        assert response.status_code == 400 and response.json()["error"], into
    assert FaceGroup.objects.filter(owner=user).count() == 2 and theirs.unknown_faces().count() == 3
    response = api.post(f"/api/groups/{second.pk}/merge/", {"into": first.pk}, format="json")
    assert response.status_code == 200 and response.json()["id"] == first.pk and response.json()["size"] == 7
    assert not FaceGroup.objects.filter(pk=second.pk).exists()

    assert api.post(f"/api/groups/{first.pk}/hide/").status_code == 204
    assert api.get("/api/groups/").json()["count"] == 0
    assert api.get(f"/api/groups/{first.pk}/").json()["hidden"] is True
    # Another user's group: 404 everywhere, and nothing changes.
    assert api.get(f"/api/groups/{theirs.pk}/").status_code == 404
    for action in ("name", "remove", "merge", "hide"):
        assert api.post(f"/api/groups/{theirs.pk}/{action}/", {"name": "x"}, format="json").status_code == 404
    assert not FaceGroup.objects.get(pk=theirs.pk).hidden
