"""The photo's faces and alerts: replacing faces keeps the user's decisions, matching, one alert per person.

No face engine here: analyses are built from boxes and encodings, so each rule is tested on its own (the
pipeline tests run the same methods on real photos, in a real worker).
"""

from __future__ import annotations

import numpy as np
import pytest

from recognition import engine
from recognition.engine import Analysis, Box, DetectedFace
from recognition.matching import Gallery
from recognition.models import Alert, Face, FaceGroup, Person, Photo, PhotoStatus, ReferencePhoto, ReferenceStatus

pytestmark = pytest.mark.django_db


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def box(left: int, top: int, size: int = 100) -> Box:
    return Box(top=top, right=left + size, bottom=top + size, left=left)


def analysis(*faces: tuple[Box, int]) -> Analysis:
    """An analysis of a 1000x800 photo with these (box, encoding seed) faces."""
    return Analysis(width=1000, height=800, faces=[DetectedFace(b, unit(seed)) for b, seed in faces])


@pytest.fixture
def rule(settings):
    settings.FACES_MATCH_DISTANCE, settings.FACES_MATCH_MARGIN = 0.55, 0.1


@pytest.fixture
def photo(user) -> Photo:
    return Photo.objects.create(owner=user, image="photos/x/p.jpg", status=PhotoStatus.PROCESSING)


def person_with_reference(user, name: str, seed: int) -> Person:
    person = Person.objects.create(owner=user, name=name)
    ReferencePhoto.objects.create(
        person=person,
        image="references/x/r.jpg",
        status=ReferenceStatus.DONE,
        encoding=engine.encoding_to_bytes(unit(seed)),
    )
    return person


def faces_of(photo: Photo) -> list[Face]:
    return list(photo.faces.order_by("left", "top"))


# replace_faces


def test_faces_are_stored_once_with_their_boxes_and_size(photo):
    photo.replace_faces(analysis((box(0, 0), 1), (box(300, 50), 2)))
    photo.replace_faces(analysis((box(0, 0), 1), (box(300, 50), 2)))
    faces = faces_of(photo)
    assert [face.box for face in faces] == [box(0, 0), box(300, 50)]
    assert np.array_equal(faces[1].vector(), unit(2))
    photo.refresh_from_db()
    assert (photo.width, photo.height) == (1000, 800)


def test_decisions_follow_the_new_face_that_overlaps_the_old_one(user, photo):
    named_as, rejected = Person.objects.create(owner=user, name="Named"), Person.objects.create(owner=user, name="No")
    photo.replace_faces(analysis((box(0, 0), 1), (box(300, 0), 2), (box(600, 0), 3)))
    first, second, third = faces_of(photo)
    Face.objects.filter(pk=first.pk).update(person=named_as, named_by_user=True, distance=0.2)
    second.rejected_people.add(rejected)
    alert = Alert.objects.create(owner=user, photo=photo, person=named_as, face=first)
    reference = ReferencePhoto.objects.create(person=named_as, image="references/x/c.jpg", source_face=first)

    # Boxes move a little between runs; the third face is gone, a new one appears far away.
    photo.replace_faces(analysis((box(5, 5), 1), (box(290, 0), 2), (box(800, 600), 4)))

    new_first, new_second, new_fourth = faces_of(photo)
    assert first.pk not in {face.pk for face in faces_of(photo)}
    assert (new_first.person, new_first.named_by_user, new_first.distance) == (named_as, True, 0.2)
    assert list(new_second.rejected_people.all()) == [rejected] and not new_second.named_by_user
    assert new_fourth.person is None and not new_fourth.named_by_user and not new_fourth.rejected_people.exists()
    assert Alert.objects.get(pk=alert.pk).face == new_first
    assert ReferencePhoto.objects.get(pk=reference.pk).source_face == new_first
    assert not Face.objects.filter(pk=third.pk).exists()


def test_a_reprocessed_face_stays_in_its_group_and_out_of_the_groups_it_was_taken_out_of(user, photo):
    """ "Who is this?" decisions are the user's too: the group a face is in, and the groups it was taken out of."""
    kept, left = FaceGroup.objects.create(owner=user), FaceGroup.objects.create(owner=user)
    photo.replace_faces(analysis((box(0, 0), 1), (box(300, 0), 2)))
    grouped, alone = faces_of(photo)
    Face.objects.filter(pk=grouped.pk).update(group=kept)
    grouped.excluded_groups.add(left)
    photo.replace_faces(analysis((box(5, 5), 1), (box(295, 0), 2)))
    new_grouped, new_alone = faces_of(photo)
    assert (new_grouped.group, list(new_grouped.excluded_groups.all())) == (kept, [left])
    assert (new_alone.group, list(new_alone.excluded_groups.all())) == (None, [])


@pytest.mark.parametrize(("width", "carried"), [(30, True), (29, False)])
def test_a_decision_carries_over_from_an_overlap_of_three_tenths(user, photo, width, carried):
    """Intersection over union of 0.3 (a 30x100 box inside the old 100x100 one) still pairs; less does not."""
    person = Person.objects.create(owner=user, name="Named")
    photo.replace_faces(analysis((box(0, 0), 1)))
    Face.objects.update(person=person, named_by_user=True)
    photo.replace_faces(Analysis(1000, 800, [DetectedFace(Box(top=0, right=width, bottom=100, left=0), unit(1))]))
    assert faces_of(photo)[0].named_by_user is carried


def test_each_decision_goes_to_the_best_overlap_first(user, photo):
    """Old A and B, new X and Y: A-X and B-Y overlap by 0.82, A-Y and B-X by 0.25. A takes X, B takes Y."""
    a_person, b_person = Person.objects.create(owner=user, name="A"), Person.objects.create(owner=user, name="B")
    photo.replace_faces(analysis((box(0, 0), 1), (box(70, 0), 2)))
    old_a, old_b = faces_of(photo)
    Face.objects.filter(pk=old_a.pk).update(person=a_person, named_by_user=True)
    Face.objects.filter(pk=old_b.pk).update(person=b_person, named_by_user=True)
    photo.replace_faces(analysis((box(10, 0), 1), (box(60, 0), 2)))
    new_x, new_y = faces_of(photo)
    assert (new_x.person, new_y.person) == (a_person, b_person)


# apply_matches and record_alerts


def test_matching_names_faces_and_makes_one_alert_per_person(rule, user, photo):
    obama, biden = person_with_reference(user, "Obama", 1), person_with_reference(user, "Biden", 2)
    photo.replace_faces(analysis((box(0, 0), 1), (box(300, 0), 2), (box(600, 0), 3)))
    # A second, farther face of Obama: still one alert for him, pointing at his nearest face.
    Face.objects.create(photo=photo, left=800, top=0, right=900, bottom=100, encoding=_near(1, 0.3))

    alerts = photo.apply_matches(Gallery.for_owner(user.pk))

    faces = faces_of(photo)
    assert [face.person for face in faces] == [obama, biden, None, obama]
    assert faces[0].distance == pytest.approx(0, abs=1e-3) and faces[3].distance == pytest.approx(0.3, abs=1e-3)
    assert sorted((alert.person.name, alert.face_id) for alert in alerts) == [
        ("Biden", faces[1].pk),
        ("Obama", faces[0].pk),
    ]
    assert all(alert.owner == user and alert.photo == photo for alert in alerts)
    assert Alert.objects.count() == 2


def test_a_second_match_sends_nothing_and_keeps_the_alerts(rule, user, photo):
    person_with_reference(user, "Obama", 1)
    photo.replace_faces(analysis((box(0, 0), 1)))
    [alert] = photo.apply_matches(Gallery.for_owner(user.pk))
    assert photo.apply_matches(Gallery.for_owner(user.pk)) == []
    assert photo.record_alerts() == []
    assert list(Alert.objects.values_list("pk", flat=True)) == [alert.pk]


def test_named_and_rejected_faces_are_the_users_word(rule, user, photo):
    obama, barack = person_with_reference(user, "Obama", 1), Person.objects.create(owner=user, name="Barack")
    photo.replace_faces(analysis((box(0, 0), 1), (box(300, 0), 1)))
    named, rejected = faces_of(photo)
    Face.objects.filter(pk=named.pk).update(person=barack, named_by_user=True)
    rejected.rejected_people.add(obama)

    alerts = photo.apply_matches(Gallery.for_owner(user.pk))

    named, rejected = faces_of(photo)
    assert named.person == barack and named.named_by_user, "a gallery match never overrides a name"
    assert rejected.person is None, "not this person, ever"
    assert alerts == [] and not Alert.objects.exists(), "a face the user named is no news to them"


def test_a_face_that_no_longer_matches_is_unnamed(rule, user, photo):
    obama = person_with_reference(user, "Obama", 1)
    photo.replace_faces(analysis((box(0, 0), 1)))
    photo.apply_matches(Gallery.for_owner(user.pk))
    obama.references.all().delete()
    assert photo.apply_matches(Gallery.for_owner(user.pk)) == []
    [face] = faces_of(photo)
    assert face.person is None and face.distance is None


def test_a_photo_without_faces_matches_nothing(rule, user, photo):
    person_with_reference(user, "Obama", 1)
    photo.replace_faces(analysis())
    assert photo.apply_matches(Gallery.for_owner(user.pk)) == []


def _near(seed: int, distance: float) -> bytes:
    """An encoding this far from unit(seed), in a direction of its own."""
    base, other = unit(seed), unit(seed + 1000)
    away = other - base * float(other @ base)
    return engine.encoding_to_bytes(base + distance * away / np.linalg.norm(away))


def test_an_old_face_gives_its_decision_to_one_new_face_only(user, photo):
    """Old A overlaps new X (0.82) and new Y (0.54): X alone is named; Y is a new face of its own."""
    named_as = Person.objects.create(owner=user, name="A")
    photo.replace_faces(analysis((box(0, 0), 1)))
    Face.objects.update(person=named_as, named_by_user=True)
    photo.replace_faces(analysis((box(10, 0), 1), (box(30, 0), 2)))
    new_x, new_y = faces_of(photo)
    assert new_x.person == named_as and new_x.named_by_user
    assert new_y.person is None and not new_y.named_by_user


def test_a_taken_face_does_not_stop_the_pairing(user, photo):
    """A-X 1.0, A-Y 0.67 (A is taken by then), B-Y 0.54: B still gets Y."""
    a_person, b_person = Person.objects.create(owner=user, name="A"), Person.objects.create(owner=user, name="B")
    photo.replace_faces(analysis((box(0, 0), 1), (box(50, 0), 2)))
    old_a, old_b = faces_of(photo)
    Face.objects.filter(pk=old_a.pk).update(person=a_person, named_by_user=True)
    Face.objects.filter(pk=old_b.pk).update(person=b_person, named_by_user=True)
    photo.replace_faces(analysis((box(0, 0), 1), (box(20, 0), 2)))
    new_x, new_y = faces_of(photo)
    assert (new_x.person, new_y.person) == (a_person, b_person)
