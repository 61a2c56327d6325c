"""The gallery matcher: per-person minima, the distance and margin rule, exclusions."""

import numpy as np
import pytest

from recognition.matching import Gallery


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
