"""The user's decisions: naming faces, rejecting matches, editing people. Real photos, Redis and worker."""

from __future__ import annotations

import numpy as np
import pytest

from recognition import curation, engine
from recognition.models import Alert, Face, Person, Photo, PhotoStatus, ReferencePhoto, ReferenceStatus
from tests.conftest import upload_of
from tests.test_process_photo import add_person, upload

pytestmark = pytest.mark.django_db(transaction=True)


def left_face(photo_id: int) -> Face:
    """In groups/obama_biden.jpg Obama is on the left, Biden on the right."""
    return Photo.objects.get(pk=photo_id).faces.order_by("left").first()


def reprocess(api, run_jobs, photo_id: int) -> Photo:
    assert api.post(f"/api/photos/{photo_id}/reprocess/").status_code == 202
    run_jobs()
    photo = Photo.objects.get(pk=photo_id)
    assert photo.status == PhotoStatus.DONE
    return photo


def test_a_named_face_becomes_a_reference_and_finds_them_elsewhere(api, user, run_jobs):
    congress_id = upload(api, "people/obama/congress_address_2009.jpg")
    group_id = upload(api, "groups/obama_biden.jpg")
    run_jobs()
    assert not Face.objects.filter(person__isnull=False).exists()

    face = left_face(group_id)
    obama = curation.create_person(user, "Obama")
    reference = curation.name_face(face, obama)
    assert reference.source_face == face and reference.status == ReferenceStatus.DONE
    assert np.array_equal(reference.vector(), face.vector())  # the matched vector itself, no second detection
    with reference.image.open("rb") as crop:
        image, width, height = engine.open_image(crop)
    assert max(width, height) <= 400 and width > 100
    run_jobs()  # the re-match this queued

    assert Photo.objects.get(pk=congress_id).people_names() == ["Obama"]
    assert Alert.objects.filter(photo_id=congress_id, person=obama).exists()
    # The user named that face: no news to them, no alert.
    assert not Alert.objects.filter(photo_id=group_id).exists()


def test_a_named_face_sticks_through_reprocessing(api, user, run_jobs):
    add_person(api, run_jobs, "Biden", "people/biden/vp_portrait_2013.jpg")
    group_id = upload(api, "groups/obama_biden.jpg")
    run_jobs()
    # Name Obama's face as somebody made up: the user's word beats the matcher, every time.
    face = left_face(group_id)
    curation.name_face(face, curation.create_person(user, "Barack"))
    run_jobs()

    photo = reprocess(api, run_jobs, group_id)
    assert photo.attempts == 1  # a new run
    named = left_face(group_id)
    assert named.pk != face.pk  # a new row from the new analysis, carrying the decision over
    assert named.named_by_user and named.person.name == "Barack"
    assert photo.people_names() == ["Barack", "Biden"]


def test_not_this_person_sticks_through_rematch_and_reprocessing(api, user, run_jobs):
    obama = add_person(api, run_jobs, "Obama", "people/obama/portrait_2012.jpg")
    group_id = upload(api, "groups/obama_biden.jpg")
    run_jobs()
    face = left_face(group_id)
    assert face.person == obama and Alert.objects.filter(photo_id=group_id, person=obama).exists()

    curation.reject_match(face)
    run_jobs()
    face.refresh_from_db()
    assert face.person is None and list(face.rejected_people.all()) == [obama]
    assert not Alert.objects.filter(photo_id=group_id).exists()

    # A new reference of Obama re-matches the gallery; the rejected face stays unmatched.
    api.post(f"/api/people/{obama.pk}/references/", {"image": upload_of("people/obama/senate.jpg")})
    run_jobs()
    assert left_face(group_id).person is None

    reprocess(api, run_jobs, group_id)
    again = left_face(group_id)
    assert again.person is None and list(again.rejected_people.all()) == [obama]


def test_rejecting_a_named_face_removes_the_reference_made_from_it(api, user, run_jobs):
    group_id = upload(api, "groups/obama_biden.jpg")
    run_jobs()
    face = left_face(group_id)
    wrong = curation.create_person(user, "Biden")
    curation.name_face(face, wrong)
    run_jobs()
    curation.reject_match(Face.objects.get(pk=face.pk))
    run_jobs()
    face.refresh_from_db()
    assert face.person is None and not face.named_by_user
    assert not wrong.references.exists()


# Editing people: database only, no face engine needed.


def encoding(seed: int) -> bytes:
    return engine.encoding_to_bytes(np.random.default_rng(seed).normal(0, 0.1, 128))


def make_person(user, name: str, seed: int) -> Person:
    person = Person.objects.create(owner=user, name=name)
    ReferencePhoto.objects.create(
        person=person, image=f"references/x/{name}.jpg", encoding=encoding(seed), status=ReferenceStatus.DONE
    )
    return person


def make_face(photo: Photo, person: Person | None, seed: int, left: int = 0) -> Face:
    return Face.objects.create(photo=photo, top=0, left=left, bottom=50, right=left + 50, encoding=encoding(seed),
                               person=person, distance=0.4 if person else None)  # fmt: skip


def test_merge_moves_everything_and_keeps_one_alert_per_photo(user, redis_server, run_jobs):
    barack, obama = make_person(user, "Barack", 1), make_person(user, "Obama", 2)
    both = Photo.objects.create(owner=user, image="photos/x/both.jpg", status=PhotoStatus.DONE)
    only_barack = Photo.objects.create(owner=user, image="photos/x/b.jpg", status=PhotoStatus.DONE)
    for photo, person, left in ((both, barack, 0), (both, obama, 100), (only_barack, barack, 0)):
        face = make_face(photo, person, seed=left + photo.pk, left=left)
        Alert.objects.create(owner=user, photo=photo, person=person, face=face, distance=0.4)
    rejecting = make_face(only_barack, None, seed=99, left=200)
    rejecting.rejected_people.add(barack)

    curation.merge_people(barack, obama)

    assert not Person.objects.filter(pk=barack.pk).exists()
    assert obama.references.count() == 2
    assert set(Alert.objects.values_list("photo_id", "person_id")) == {(both.pk, obama.pk), (only_barack.pk, obama.pk)}
    assert list(rejecting.rejected_people.all()) == [obama]
    run_jobs()  # the re-match queued by the merge runs cleanly


def test_merge_refuses_the_same_person_or_another_owner(user, other_user):
    mine, theirs = make_person(user, "A", 1), make_person(other_user, "B", 2)
    with pytest.raises(ValueError):
        curation.merge_people(mine, mine)
    with pytest.raises(ValueError):
        curation.merge_people(mine, theirs)


def test_deleting_a_person_frees_the_faces_named_as_them(user, redis_server, run_jobs):
    person = make_person(user, "Gone", 1)
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", status=PhotoStatus.DONE)
    face = make_face(photo, person, seed=1)
    Face.objects.filter(pk=face.pk).update(named_by_user=True)
    Alert.objects.create(owner=user, photo=photo, person=person, face=face)

    curation.delete_person(person)
    run_jobs()

    face.refresh_from_db()
    assert face.person is None and not face.named_by_user
    assert not Alert.objects.exists() and not ReferencePhoto.objects.exists()


def test_deleting_a_reference_rematches(user, redis_server, run_jobs):
    person = make_person(user, "Solo", 1)
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", status=PhotoStatus.DONE)
    face = make_face(photo, person, seed=1)  # the same vector as the reference: distance 0

    curation.delete_reference(person.references.get())
    run_jobs()

    face.refresh_from_db()
    assert face.person is None  # nothing left to match against


def test_a_chosen_picture_follows_its_face_through_reprocessing(api, user, run_jobs):
    obama = add_person(api, run_jobs, "Obama", "people/obama/portrait_2012.jpg")
    group_id = upload(api, "groups/obama_biden.jpg")
    run_jobs()
    curation.set_picture(obama, left_face(group_id))
    reprocess(api, run_jobs, group_id)
    obama.refresh_from_db()
    assert obama.picture == left_face(group_id)
    with pytest.raises(ValueError):
        curation.set_picture(obama, Face.objects.filter(photo_id=group_id, person__isnull=True).get())
