"""Reference photos: one face is the person; a group photo waits for the user to choose (issue 16, bug 1)."""

from __future__ import annotations

import pytest

from recognition.models import Person, Photo, ReferencePhoto, ReferenceStatus
from tests.conftest import upload_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.scaleout]


def add_person(api, name: str, relative: str) -> tuple[int, int]:
    person_id = api.post("/api/people/", {"name": name}, format="json").json()["id"]
    response = api.post(f"/api/people/{person_id}/references/", {"image": upload_of(relative)})
    assert response.status_code == 202, response.content  # the upload answers at once: detection is in the job
    return person_id, response.json()["id"]


def test_group_photo_as_reference_waits_for_a_choice_and_takes_nobody(api, user, run_jobs):
    obama_id, _ = add_person(api, "Barack Obama", "people/obama/portrait_2012.jpg")
    run_jobs()
    photo_id = api.post("/api/photos/", {"image": upload_of("groups/obama_biden.jpg")}).json()["id"]
    run_jobs()
    assert Photo.objects.get(pk=photo_id).people_names() == ["Barack Obama"]

    group_id, reference_id = add_person(api, "Group Person", "groups/obama_biden.jpg")
    run_jobs()
    body = api.get(f"/api/people/{group_id}/").json()
    (reference,) = body["references"]
    assert reference["id"] == reference_id and reference["status"] == "choose"
    faces = reference["faces"]
    assert [face["index"] for face in faces] == [0, 1]
    assert set(faces[0]["box"]) == {"top", "right", "bottom", "left"}
    assert faces[0]["box"]["left"] < faces[1]["box"]["left"]  # left to right, as the user sees them
    # The left face is Obama's: the choice says so before it is taken.
    assert faces[0]["person"] == {"id": obama_id, "name": "Barack Obama"} and faces[1]["person"] is None
    # Nothing was guessed: Obama is still found, and the group person in nothing.
    assert Photo.objects.get(pk=photo_id).people_names() == ["Barack Obama"]
    assert ReferencePhoto.objects.get(pk=reference_id).encoding is None

    response = api.post(f"/api/people/{group_id}/references/{reference_id}/choose/", {"face": 1}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "done" and response.json()["faces"] == [] and "warning" not in response.json()
    run_jobs()  # the re-match
    assert Photo.objects.get(pk=photo_id).people_names() == ["Barack Obama", "Group Person"]
    assert Person.objects.get(pk=obama_id).faces.count() == 1


def test_choose_answers_clearly_and_warns_when_the_face_is_someone_elses(api, other_api, user, run_jobs):
    obama_id, _ = add_person(api, "Barack Obama", "people/obama/portrait_2012.jpg")
    group_id, reference_id = add_person(api, "Group Person", "groups/obama_biden.jpg")
    run_jobs()
    url = f"/api/people/{group_id}/references/{reference_id}/choose/"
    assert api.post(url, {"face": 7}, format="json").status_code == 400
    assert "error" in api.post(url, {"face": "left"}, format="json").json()
    assert other_api.post(url, {"face": 0}, format="json").status_code == 404
    response = api.post(url, {"face": 0}, format="json")
    assert response.status_code == 200
    assert "Barack Obama" in response.json()["warning"]
    again = api.post(url, {"face": 1}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "This reference is not waiting for a choice."
    assert ReferencePhoto.objects.get(pk=reference_id).status == ReferenceStatus.DONE


def test_one_face_is_taken_and_none_fails(api, run_jobs):
    _, single = add_person(api, "Biden", "people/biden/vp_portrait_2013.jpg")
    _, cat = add_person(api, "Cat", "nofaces/cat.png")
    run_jobs()
    assert ReferencePhoto.objects.get(pk=single).status == ReferenceStatus.DONE
    failed = ReferencePhoto.objects.get(pk=cat)
    assert failed.status == ReferenceStatus.FAILED and failed.error == "no face found in this reference photo"


def test_taking_someones_face_moves_their_alert_too(api, user, run_jobs):
    obama_id, _ = add_person(api, "Barack Obama", "people/obama/portrait_2012.jpg")
    run_jobs()
    photo_id = api.post("/api/photos/", {"image": upload_of("groups/obama_biden.jpg")}).json()["id"]
    run_jobs()
    assert [alert["person"]["id"] for alert in api.get("/api/alerts/").json()["results"]] == [obama_id]
    group_id, reference_id = add_person(api, "Group Person", "groups/obama_biden.jpg")
    run_jobs()
    api.post(f"/api/people/{group_id}/references/{reference_id}/choose/", {"face": 0}, format="json")
    run_jobs()
    # Obama's face is now nobody's for sure (two people within the margin) or Group Person's: either
    # way his alert no longer points at a photo where he is not found.
    photo = Photo.objects.get(pk=photo_id)
    alerts = api.get("/api/alerts/").json()["results"]
    assert "Barack Obama" not in photo.people_names()
    assert obama_id not in [alert["person"]["id"] for alert in alerts]
