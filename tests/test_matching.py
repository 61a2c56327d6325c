"""The gallery matcher: per-person minima, the distance and margin rule, exclusions."""

import numpy as np
import pytest

from recognition import engine
from recognition.matching import Gallery, Match
from recognition.models import Person, ReferencePhoto, ReferenceStatus


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def rule(settings):
    settings.FACES_MATCH_DISTANCE = 0.55
    settings.FACES_MATCH_MARGIN = 0.1


def test_per_person_distance_is_the_nearest_reference(rule):
    a1, a2, b = unit(1), unit(2), unit(3)
    gallery = Gallery(np.stack([a1, b, a2]), np.array([7, 9, 7]))
    distances = gallery.person_distances(a2[None, :])
    assert list(gallery.people) == [7, 9]
    assert distances[0, 0] == pytest.approx(0.0, abs=1e-3)
    assert distances[0, 1] == pytest.approx(np.linalg.norm(a2 - b), abs=1e-4)


def test_match_within_distance_and_margin(rule):
    a, b = unit(1), unit(2)
    probe = a + 0.3 * (unit(5) - a) / np.linalg.norm(unit(5) - a)  # 0.3 from a, far from b
    [found] = Gallery(np.stack([a, b]), np.array([1, 2])).match(probe[None, :])
    assert found.person_id == 1 and found.distance == pytest.approx(0.3, abs=1e-3)


def test_too_far_is_nobody(rule):
    [found] = Gallery(unit(1)[None, :], np.array([1])).match(unit(2)[None, :])
    assert found is None


def test_close_to_two_people_is_nobody(rule):
    a = unit(1)
    b = a + 0.05 * unit(2)
    probe = a + 0.2 * unit(3)
    [found] = Gallery(np.stack([a, b]), np.array([1, 2])).match(probe[None, :])
    assert found is None


def test_excluded_person_is_skipped(rule):
    a, b = unit(1), unit(2)
    [found] = Gallery(np.stack([a, b]), np.array([1, 2])).match(a[None, :], excluded=[[1]])
    assert found is None


def test_empty_gallery_matches_nothing(rule):
    assert Gallery(np.empty((0, 128), np.float32), np.empty(0, np.int64)).match(unit(1)[None, :]) == [None]


# The rule at its boundaries, with galleries of more than two people. Probe at the origin, each person's
# reference on an axis of their own: every distance is exactly the length given (dyadic fractions, exact in
# float32), so "within" and "at least" are tested at equality, not near it.


def gallery_at(distances: dict[int, float]) -> Gallery:
    """People (by id) whose nearest reference is exactly this far from the origin."""
    encodings = np.zeros((len(distances), 128), np.float32)
    for row, distance in enumerate(distances.values()):
        encodings[row, row] = distance
    return Gallery(encodings, np.array(list(distances)))


def match_origin(gallery: Gallery):
    [found] = gallery.match(np.zeros((1, 128), np.float32))
    return found


@pytest.fixture
def dyadic_rule(settings):
    settings.FACES_MATCH_DISTANCE = 0.5
    settings.FACES_MATCH_MARGIN = 0.25


def test_exactly_at_the_distance_and_the_margin_is_a_match(dyadic_rule):
    # The runner-up (person 30, 0.75) comes after a farther person in id order.
    found = match_origin(gallery_at({10: 0.5, 20: 0.875, 30: 0.75, 40: 1.0}))
    assert found is not None and found.person_id == 10 and found.distance == 0.5


def test_just_past_the_distance_is_nobody(dyadic_rule):
    assert match_origin(gallery_at({10: 0.5078125, 20: 1.0, 30: 1.0})) is None


def test_just_under_the_margin_is_nobody(dyadic_rule):
    # A stranger between two people: 0.5 from one, 0.7421875 from the other (0.2421875 apart).
    assert match_origin(gallery_at({10: 0.5, 20: 0.875, 30: 0.7421875, 40: 1.0})) is None


def test_the_runner_up_is_the_second_nearest_of_many(rule):
    """Every other person counts, not only the next in the list: here the close one is last of five."""
    assert match_origin(gallery_at({1: 0.4, 2: 0.9, 3: 0.95, 4: 1.0, 5: 0.45})) is None
    assert match_origin(gallery_at({1: 0.4, 2: 0.9, 3: 0.95, 4: 1.0, 5: 0.52})).person_id == 1


@pytest.mark.parametrize(
    ("distances", "person"),
    [
        ({1: 0.549, 2: 0.7, 3: 0.8}, 1),  # within 0.55, 0.151 clear of the rest
        ({1: 0.551, 2: 0.7, 3: 0.8}, None),  # past 0.55
        ({1: 0.3, 2: 0.401, 3: 0.9}, 1),  # 0.101 clear
        ({1: 0.3, 2: 0.399, 3: 0.9}, None),  # 0.099: close to two people is nobody
        ({1: 0.3, 2: 0.37, 3: 0.9}, None),  # 0.07: nobody (a margin halved to 0.05 would say person 1)
        ({1: 0.9, 2: 0.3, 3: 0.38}, None),  # the nearest need not be first
        ({1: 0.9, 2: 0.3, 3: 0.41}, 2),
    ],
)
def test_the_default_rule_near_its_boundaries(rule, distances, person):
    found = match_origin(gallery_at(distances))
    assert (found.person_id if found else None) == person


def test_one_person_gallery_needs_only_the_distance(rule):
    found = match_origin(gallery_at({7: 0.5}))
    assert found.person_id == 7 and found.distance == 0.5


def test_distance_is_rounded_to_four_places(settings):
    settings.FACES_MATCH_DISTANCE, settings.FACES_MATCH_MARGIN = 0.55, 0.1
    assert match_origin(gallery_at({7: 0.40625})).distance == round(0.40625, 4) == 0.4062


def test_many_probes_at_once_each_get_their_own_answer(rule):
    a, b, stranger = unit(1), unit(2), unit(3)
    found = Gallery(np.stack([a, b]), np.array([1, 2])).match(np.stack([b, stranger, a]))
    assert [match.person_id if match else None for match in found] == [2, None, 1]


def test_a_probe_equal_to_its_reference_is_at_distance_zero_not_nan(rule):
    """Rounding can make |g|^2 - 2 g.p + |p|^2 a hair below zero: it is clamped, never the root of a negative."""
    references = np.stack([unit(seed) * 3 for seed in range(60)])
    gallery = Gallery(references, np.arange(60))
    distances = gallery.person_distances(references)
    assert np.isfinite(distances).all() and (distances >= 0).all()
    assert np.allclose(np.diag(distances), 0, atol=5e-3)
    assert [match.person_id for match in gallery.match(references)] == list(range(60))


def test_matches_are_values():
    assert Match(3, 0.25) == Match(3, 0.25) and len({Match(3, 0.25), Match(3, 0.25)}) == 1


def test_memory_is_the_encodings_and_their_index(rule):
    """What `make bench` reports as gallery memory: 512 bytes an encoding plus 4 for its norm, 16 a person."""
    gallery = Gallery(np.stack([unit(seed) for seed in range(10)]), np.array([1, 1, 2, 3, 3, 3, 4, 5, 5, 6]))
    assert len(gallery) == 10
    assert gallery.nbytes == 10 * (512 + 4) + 6 * (8 + 8)


# The gallery of one user, from the database.


def add_reference(person: Person, encoding: np.ndarray | None, status: str = ReferenceStatus.DONE) -> None:
    ReferencePhoto.objects.create(
        person=person,
        image="references/x/r.jpg",
        status=status,
        encoding=None if encoding is None else engine.encoding_to_bytes(encoding),
    )


@pytest.mark.django_db
def test_for_owner_takes_the_owners_encoded_references_only(rule, user, other_user):
    mine, theirs = Person.objects.create(owner=user, name="Mine"), Person.objects.create(owner=other_user, name="T")
    add_reference(mine, unit(1))
    add_reference(mine, unit(2))
    add_reference(mine, None, status=ReferenceStatus.QUEUED)  # not encoded yet
    add_reference(mine, unit(4), status=ReferenceStatus.FAILED)
    add_reference(theirs, unit(3))

    gallery = Gallery.for_owner(user.pk)
    assert len(gallery) == 2 and list(gallery.people) == [mine.pk]
    found = gallery.match(np.stack([unit(2), unit(3), unit(4)]))
    assert found[0].person_id == mine.pk and found[0].distance == pytest.approx(0, abs=1e-3)
    assert found[1:] == [None, None], "another user's people and failed references are not matched"


@pytest.mark.django_db
def test_for_owner_without_references_is_empty_and_matches_nothing(rule, user):
    Person.objects.create(owner=user, name="No photos yet")
    gallery = Gallery.for_owner(user.pk)
    assert len(gallery) == 0 and len(gallery.people) == 0
    assert gallery.match(np.stack([unit(1), unit(2)])) == [None, None]
