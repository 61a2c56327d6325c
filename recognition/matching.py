"""Matching face encodings against a user's gallery of known people, vectorized with numpy.

The rule (calibrated by benchmarks/accuracy.py on ../shared/faces): a face is a person when the
nearest reference of that person is within FACES_MATCH_DISTANCE, and every other person's nearest
reference is at least FACES_MATCH_MARGIN farther. A face close to several people is nobody.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from recognition.engine import ENCODING_DTYPE, ENCODING_SIZE, encoding_from_bytes


@dataclass(frozen=True)
class Match:
    person_id: int
    distance: float


class Gallery:
    """Every reference encoding of one user's people, grouped by person for per-person minima."""

    def __init__(self, encodings: np.ndarray, person_ids: np.ndarray) -> None:
        order = np.argsort(person_ids, kind="stable")
        # reshape(-1, ...) here and below: no mutate, numpy reads any negative size (a mutant's -2) as "what fits".
        encodings = np.asarray(encodings, dtype=ENCODING_DTYPE)[order]
        self.encodings = np.ascontiguousarray(encodings).reshape(-1, ENCODING_SIZE)  # pragma: no mutate
        sorted_ids = np.asarray(person_ids, dtype=np.int64)[order]
        self.people, self.starts = np.unique(sorted_ids, return_index=True)
        self.squared_norms = np.einsum("ij,ij->i", self.encodings, self.encodings)

    @classmethod
    def for_owner(cls, owner_id: int) -> Gallery:
        from recognition.models import ReferencePhoto, ReferenceStatus

        rows = ReferencePhoto.objects.filter(
            person__owner_id=owner_id, status=ReferenceStatus.DONE, encoding__isnull=False
        ).values_list("person_id", "encoding")
        rows = list(rows)
        if not rows:
            # Equivalent mutant: a row more is dropped by the constructor's reordering by (no) person ids.
            return cls(np.empty((0, ENCODING_SIZE), ENCODING_DTYPE), np.empty(0, np.int64))  # pragma: no mutate
        person_ids = np.fromiter((pid for pid, _ in rows), dtype=np.int64, count=len(rows))
        encodings = np.stack([encoding_from_bytes(enc) for _, enc in rows])
        return cls(encodings, person_ids)

    def __len__(self) -> int:
        return len(self.encodings)

    @property
    def nbytes(self) -> int:
        return self.encodings.nbytes + self.squared_norms.nbytes + self.people.nbytes + self.starts.nbytes

    def person_distances(self, probes: np.ndarray) -> np.ndarray:
        """Distance from each probe (k x 128) to each person's nearest reference: k x people."""
        probes = np.asarray(probes, dtype=ENCODING_DTYPE).reshape(-1, ENCODING_SIZE)  # pragma: no mutate
        # |g - p|^2 = |g|^2 - 2 g.p + |p|^2: one matrix product instead of a k x n x 128 difference.
        squared = self.squared_norms[None, :] - 2.0 * (probes @ self.encodings.T)
        squared += np.einsum("ij,ij->i", probes, probes)[:, None]
        distances = np.sqrt(np.maximum(squared, 0.0))
        return np.minimum.reduceat(distances, self.starts, axis=1)

    def match(self, probes: np.ndarray, excluded: Iterable[Iterable[int]] | None = None) -> list[Match | None]:
        """The matched person of each probe, or None; excluded[i] lists people face i is known not to be."""
        probes = np.asarray(probes, dtype=ENCODING_DTYPE).reshape(-1, ENCODING_SIZE)  # pragma: no mutate
        if not len(self.people) or not len(probes):
            return [None] * len(probes)
        per_person = self.person_distances(probes)
        if excluded is not None:
            for row, people in enumerate(excluded):
                mask = np.isin(self.people, list(people))
                per_person[row, mask] = np.inf
        return [self._decide(row) for row in per_person]

    def _decide(self, row: np.ndarray) -> Match | None:
        best = int(np.argmin(row))
        distance = float(row[best])
        if distance > settings.FACES_MATCH_DISTANCE:
            return None
        if len(row) > 1:
            second = float(np.delete(row, best).min())  # the nearest other person
            if second - distance < settings.FACES_MATCH_MARGIN:
                return None
        return Match(person_id=int(self.people[best]), distance=round(distance, 4))
