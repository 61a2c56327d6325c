"""Matching face encodings against a user's gallery of known people, vectorized with numpy.

The rule (calibrated by benchmarks/accuracy.py on ../shared/faces): a face is a person when the
nearest reference of that person is within FACES_MATCH_DISTANCE, and every other person's nearest
reference is at least FACES_MATCH_MARGIN farther. A face close to several people is nobody.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from recognition.engine import ENCODING_DTYPE, ENCODING_SIZE


@dataclass(frozen=True)
class Match:
    person_id: int
    distance: float


class Gallery:
    """Every reference encoding of one user's people, grouped by person for per-person minima."""

    def __init__(self, encodings: np.ndarray, person_ids: np.ndarray) -> None:
        order = np.argsort(person_ids, kind="stable")
        # Column-major: encodings.T is then a contiguous 128 x n matrix, and probes @ encodings.T the plain
        # product BLAS does fastest (measured at 100,000: a quarter less CPU for 3 probes, 40% for one).
        # reshape(-1, ...) here and below: no mutate, numpy reads any negative size (a mutant's -2) as "what fits".
        ordered = np.asarray(encodings, dtype=ENCODING_DTYPE)[order].reshape(-1, ENCODING_SIZE)  # pragma: no mutate
        self.encodings = np.asfortranarray(ordered)
        sorted_ids = np.asarray(person_ids, dtype=np.int64)[order]
        self.people, self.starts = np.unique(sorted_ids, return_index=True)
        self.squared_norms = np.einsum("ij,ij->i", self.encodings, self.encodings)

    @classmethod
    def for_owner(cls, owner_id: int) -> Gallery:
        """The owner's gallery as it is now: from this process's cache when still current (one query)."""
        return GALLERIES.get(owner_id)

    @classmethod
    def load(cls, owner_id: int) -> Gallery:
        """The owner's gallery read from the database: every encoded reference."""
        from recognition.models import ReferencePhoto, ReferenceStatus

        rows = ReferencePhoto.objects.filter(
            person__owner_id=owner_id, status=ReferenceStatus.DONE, encoding__isnull=False
        ).values_list("person_id", "encoding")
        rows = list(rows)
        if not rows:
            # Equivalent mutant: a row more is dropped by the constructor's reordering by (no) person ids.
            return cls(np.empty((0, ENCODING_SIZE), ENCODING_DTYPE), np.empty(0, np.int64))  # pragma: no mutate
        person_ids = np.fromiter((pid for pid, _ in rows), dtype=np.int64, count=len(rows))
        # One buffer for all: a tenth of the time of an array per row (34 ms at 10,000 references).
        packed = b"".join(encoding for _, encoding in rows)
        if len(packed) != len(rows) * ENCODING_SIZE * np.dtype(ENCODING_DTYPE).itemsize:
            raise ValueError(f"a stored reference encoding of user {owner_id} is not {ENCODING_SIZE} numbers")
        encodings = np.frombuffer(packed, dtype=ENCODING_DTYPE).reshape(-1, ENCODING_SIZE)  # pragma: no mutate
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


class GalleryCache:
    """Owners' galleries as last loaded, each filed under the GalleryVersion it was loaded at; a changed
    version means a reload. At most GALLERY_CACHE_MB of them, the least recently used going first.

    One per process (GALLERIES). A worker parent loads a job's gallery before forking the job's work
    horse (jobs.galleries), so the horse inherits it: copy-on-write pages that are only ever read.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[int, tuple[int, Gallery]] = OrderedDict()
        self._lock = threading.Lock()  # web processes have threads

    def get(self, owner_id: int) -> Gallery:
        return self.versioned(owner_id)[1]

    def versioned(self, owner_id: int) -> tuple[int, Gallery]:
        """The owner's current gallery and the version it was loaded at."""
        from recognition.models import GalleryVersion

        # The version before the rows: a change committed in between files a newer gallery under an
        # older version (reloaded next time), never an older gallery under the newer version.
        version = GalleryVersion.current(owner_id)
        with self._lock:
            entry = self._entries.get(owner_id)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(owner_id)
                return entry
        gallery = Gallery.load(owner_id)
        self._keep(owner_id, version, gallery)
        return version, gallery

    def recheck(self, owner_id: int, loaded: tuple[int, Gallery]) -> Gallery:
        """A gallery got from versioned() earlier, if still current (one query), else the current one."""
        from recognition.models import GalleryVersion

        version, gallery = loaded
        return gallery if GalleryVersion.current(owner_id) == version else self.get(owner_id)

    def _keep(self, owner_id: int, version: int, gallery: Gallery) -> None:
        limit = settings.GALLERY_CACHE_MB * 2**20
        with self._lock:
            self._entries.pop(owner_id, None)
            if gallery.nbytes > limit:
                return  # larger than the whole cache: loaded for each use
            self._entries[owner_id] = (version, gallery)
            total = sum(entry.nbytes for _, entry in self._entries.values())
            while total > limit:
                _, (_, oldest) = self._entries.popitem(last=False)
                total -= oldest.nbytes

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(gallery.nbytes for _, gallery in self._entries.values())

    def __contains__(self, owner_id: int) -> bool:
        return owner_id in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


GALLERIES = GalleryCache()
