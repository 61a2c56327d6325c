"""Grouping the faces that match nobody into people to name ("Who is this?").

The method, in the terms of recognition.matching's distances (settings, README "Who is this?"):

- Two unknown faces within FACES_GROUP_DISTANCE are linked; dlib's chinese_whispers labels the linked
  graph, and a cluster of FACES_GROUP_MIN_FACES or more is a group. Each face keeps only its nearest
  links, so a person with thousands of faces costs edges in proportion, not squared.
- The nearest faces vote (agreeing): a face stays in its cluster, or joins a group, when its
  FACES_GROUP_JOIN_VOTES nearest faces within FACES_GROUP_JOIN_DISTANCE are all of that group (all of a
  smaller group; half to stay). A face of
  the same person in other light or years sits nearer several of their faces than anyone else's; a
  blurred photo may come near one face of someone else, not several.
- Distances are computed by numpy in blocks, never as an n x n matrix; a full run compares the leading
  principal axes first (close_pairs).

An incremental run (group_new_faces, after photos are processed) looks only at faces no run has seen: it
scans the owner's packed FaceIndexChunk rows for their neighbours, joins them to groups or forms new
groups among them and the ungrouped faces nearby, then appends them to the index. regroup_owner redoes
everything (manage.py group_faces --full). User decisions win both: a face taken out of a group never
rejoins it, hidden groups and groups the user shaped (kept) keep their faces, named faces are no longer
unknown.
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dlib
import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from threadpoolctl import ThreadpoolController

from recognition.engine import ENCODING_DTYPE, ENCODING_SIZE, encoding_from_bytes
from recognition.matching import Gallery
from recognition.models import Face, FaceGroup, FaceIndexChunk, Person, Photo

BLOCK_ROWS = 1024
BLOCK_COLUMNS = 8192
FULL_BLOCK = 1024  # rows and columns of a full run's blocks: 4 MB of distances, in the CPU's cache
MAX_LINKS = 16  # nearest neighbours kept per face (the links of an incremental run, the votes of a full one)
WHISPER_LINKS = 8  # nearest links per face chinese_whispers weighs in a full run: its cost is per link
INCREMENTAL_BATCH = 2000  # new faces per incremental step

Progress = Callable[[float], None]


@dataclass(frozen=True)
class Rule:
    link: float
    join: float
    votes: int
    min_faces: int

    @classmethod
    def from_settings(cls) -> Rule:
        return cls(
            link=settings.FACES_GROUP_DISTANCE,
            join=settings.FACES_GROUP_JOIN_DISTANCE,
            votes=settings.FACES_GROUP_JOIN_VOTES,
            min_faces=settings.FACES_GROUP_MIN_FACES,
        )

    def votes_needed(self, others: np.ndarray, member: bool = False) -> np.ndarray:
        """How many of a face's nearest faces must be of a group with `others` faces (besides this one)
        for it to join: the votes, or all of a smaller group; to stay in its cluster, half of those."""
        others = np.asarray(others)
        return np.maximum(1, np.minimum(self.votes, -(-others // 2) if member else others))


# Nearest neighbours in blocks.


def _squared_norms(vectors: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", vectors, vectors)


def pairs_within(
    rows: np.ndarray, columns: np.ndarray, within: float, upper: bool = False, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (row, column, distance) closer than within, block by block; upper=True (rows is columns)
    keeps only row < column, computing each pair once."""
    rows = np.asarray(rows, dtype=ENCODING_DTYPE).reshape(-1, ENCODING_SIZE)
    columns = np.asarray(columns, dtype=ENCODING_DTYPE).reshape(-1, ENCODING_SIZE)
    row_norms, column_norms = _squared_norms(rows), _squared_norms(columns)
    limit = np.float32(within * within)
    found_i, found_j, found_d = [], [], []
    for start in range(0, len(rows), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(rows))
        block = rows[start:stop]
        for column_start in range(start if upper else 0, len(columns), BLOCK_COLUMNS):
            column_stop = min(column_start + BLOCK_COLUMNS, len(columns))
            squared = block @ columns[column_start:column_stop].T
            squared *= -2.0
            squared += row_norms[start:stop, None]
            squared += column_norms[None, column_start:column_stop]
            i, j = np.nonzero(squared < limit)
            i, j = i + start, j + column_start
            if upper:
                keep = i < j
                i, j = i[keep], j[keep]
            found_i.append(i.astype(np.int64))
            found_j.append(j.astype(np.int64))
            found_d.append(np.sqrt(np.maximum(squared[i - start, j - column_start], 0.0)))
        if progress is not None:
            progress(stop / len(rows))
    if not found_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, ENCODING_DTYPE)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)


def nearest_links(
    i: np.ndarray, j: np.ndarray, d: np.ndarray, link: float, most: int = MAX_LINKS
) -> list[tuple[int, int, float]]:
    """The edges (i < j) that are among the `most` nearest of either end, weighted for chinese_whispers."""
    keep = among_nearest(i, j, d, most)
    return weighted_links(i[keep], j[keep], d[keep], link)


def weighted_links(i: np.ndarray, j: np.ndarray, d: np.ndarray, link: float) -> list[tuple[int, int, float]]:
    """Edges for chinese_whispers, weighted 1 for identical faces down to almost 0 at the link distance,
    so that a near pair outvotes a far one (a lone link between two people does not merge them)."""
    low, high = np.minimum(i, j), np.maximum(i, j)
    weights = np.maximum(1.0 - np.asarray(d, np.float64) / link, 1e-3)
    return list(zip(low.tolist(), high.tolist(), weights.tolist(), strict=True))


HEAD_AXES = 64  # principal axes compared first in a full run (see close_pairs)
PAIRS_BUDGET = 4_000_000  # pairs held before those nobody needs are dropped (close_pairs)


def principal_axes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centre and the principal axes (a rotation, largest variance first) of up to 10,000 of the vectors."""
    sample = np.asarray(vectors[:: max(1, len(vectors) // 10_000)], np.float64).reshape(-1, ENCODING_SIZE)
    if not len(sample):  # nothing to group: any rotation will do
        return np.zeros(ENCODING_SIZE, ENCODING_DTYPE), np.eye(ENCODING_SIZE, dtype=ENCODING_DTYPE)
    centre = sample.mean(axis=0)
    _, axes = np.linalg.eigh((sample - centre).T @ (sample - centre))
    return centre.astype(ENCODING_DTYPE), np.ascontiguousarray(axes[:, ::-1], dtype=ENCODING_DTYPE)


def close_pairs(
    vectors: np.ndarray, within: float, most: int = MAX_LINKS, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs (i < j, distance) closer than within that are among the `most` nearest of either face.

    One pass over the upper triangle, in blocks of FULL_BLOCK x FULL_BLOCK on every core. Turned to their
    principal axes (a rotation: the same distances), faces are compared on the leading HEAD_AXES first:
    that partial distance is never more than the whole, so a pair it puts beyond `within` is beyond it,
    and only the few pairs it keeps are measured in full. Half the multiplications, the same pairs. The
    pairs held stay within PAIRS_BUDGET or `most` a face: a person with thousands of faces does not fill
    the memory with their pairs."""
    nearest = _Nearest(len(vectors), most)
    starts = range(0, len(vectors), FULL_BLOCK)
    # Each block is a matrix product and two scans that let go of the GIL: threads share the cores with
    # no copies. One BLAS thread each: BLAS's own threads spin on products this small (measured: the
    # 128 x 128 eigh took 0.2 s of CPU with two threads on a busy machine, 3 ms with one).
    with _blas().limit(limits=1, user_api="blas"), ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        search = _HeadSearch(vectors, within)
        for done, found in enumerate(pool.map(search.rows, starts), start=1):
            nearest.add(*found)
            if progress is not None:
                progress(done / len(starts))
    return nearest.pairs()


class _HeadSearch:
    """close_pairs' blocks: the faces turned to their principal axes, and the head of each for one product."""

    def __init__(self, vectors: np.ndarray, within: float) -> None:
        centre, axes = principal_axes(vectors)
        self.turned = (np.asarray(vectors, ENCODING_DTYPE) - centre) @ axes
        head = self.turned[:, :HEAD_AXES]
        norms = _squared_norms(head)[:, None]
        ones = np.ones_like(norms)
        # One product gives squared distances: [a, |a|², 1] . [-2b, 1, |b|²] = |a - b|².
        self.left = np.hstack([head, norms, ones])
        self.right = np.ascontiguousarray(np.hstack([-2.0 * head, ones, norms]).T)
        self.limit = np.float32(within * within)
        self.slack = np.float32(1e-4)  # the product's rounding: a pair on the border is measured in full

    def rows(self, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pairs closer than within of the faces start... (a block of rows) with every later face."""
        count = len(self.turned)
        stop = min(start + FULL_BLOCK, count)
        found = []
        for column_start in range(start, count, FULL_BLOCK):
            partial = self.left[start:stop] @ self.right[:, column_start : column_start + FULL_BLOCK]
            i, j = _below(partial, self.limit + self.slack)
            i, j = i + start, j + column_start
            upper = i < j
            found.append(self._measured(i[upper], j[upper]))
        i, j, d = (np.concatenate(column) for column in zip(*found, strict=True))
        return i, j, d

    def _measured(self, i: np.ndarray, j: np.ndarray, chunk: int = 65_536) -> tuple[np.ndarray, ...]:
        """The pairs among (i, j) closer than within, measured on every axis, a chunk at a time (one
        person's thousands of faces keep the memory at 32 MB of differences)."""
        kept = []
        for first in range(0, len(i), chunk):
            a, b = i[first : first + chunk], j[first : first + chunk]
            difference = self.turned[a] - self.turned[b]
            squared = np.einsum("ij,ij->i", difference, difference)
            close = squared < self.limit
            kept.append((a[close], b[close], np.sqrt(squared[close])))
        if not kept:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, ENCODING_DTYPE)
        return tuple(np.concatenate(column) for column in zip(*kept, strict=True))


def _below(matrix: np.ndarray, limit: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the entries under limit, for a matrix where they are few: the mask is scanned
    8 bytes at a time (np.nonzero on the whole mask costs as much as the product that made it)."""
    mask = (matrix < limit).ravel()
    whole = len(mask) - len(mask) % 8
    words = np.flatnonzero(mask[:whole].view(np.uint64))
    word, offset = np.nonzero(mask[:whole].reshape(-1, 8)[words])
    flat = np.concatenate([words[word] * 8 + offset, np.flatnonzero(mask[whole:]) + whole])
    return np.divmod(flat, matrix.shape[1])


class _Nearest:
    """Pairs found so far, dropping those that are no longer among the `most` nearest of either face
    (more pairs found later only push them further down) whenever they pass PAIRS_BUDGET."""

    def __init__(self, count: int, most: int) -> None:
        self.most = most
        self.budget = max(PAIRS_BUDGET, 4 * most * count)
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.held = 0

    def add(self, i: np.ndarray, j: np.ndarray, d: np.ndarray) -> None:
        if len(i):
            self.parts.append((i.astype(np.int64), j.astype(np.int64), d.astype(ENCODING_DTYPE)))
            self.held += len(i)
            if self.held > self.budget:
                self.parts = [self.pairs()]
                self.held = len(self.parts[0][0])

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.parts:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, ENCODING_DTYPE)
        i, j, d = (np.concatenate(column) for column in zip(*self.parts, strict=True))
        keep = among_nearest(i, j, d, self.most)
        return i[keep], j[keep], d[keep]


def among_nearest(i: np.ndarray, j: np.ndarray, d: np.ndarray, most: int) -> np.ndarray:
    """Which pairs are among the `most` nearest of either of their faces."""
    source = np.concatenate([i, j])
    order = np.lexsort((np.concatenate([d, d]), source))
    sorted_source = source[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_source)) + 1]
    rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    keep = np.zeros(len(i), bool)
    keep[order[rank < most] % len(i)] = True
    return keep


def chinese_whispers(count: int, edges: list[tuple[int, int, float]]) -> np.ndarray:
    """dlib's chinese_whispers labels for count vertices; a vertex with no edge is a cluster of its own."""
    labels = np.arange(count, dtype=np.int64) + count  # past dlib's highest vertex: labels it cannot give
    if edges:
        found = np.asarray(dlib.chinese_whispers(edges), dtype=np.int64)
        labels[: len(found)] = found  # dlib labels 0..k-1, isolated vertices below the highest included
    return labels


def linked_clusters(count: int, i: np.ndarray, j: np.ndarray, d: np.ndarray, link: float) -> np.ndarray:
    """chinese_whispers labels of count faces linked by the pairs (i, j, d); dlib sees only the linked
    faces (its cost is per vertex, and most faces of a large library may have no link)."""
    linked, compact = np.unique(np.concatenate([i, j]), return_inverse=True)
    labels = np.arange(count, dtype=np.int64) + count
    found = chinese_whispers(len(linked), weighted_links(compact[: len(i)], compact[len(i) :], d, link))
    labels[linked] = found
    return labels


# The clustering of a whole set (full regrouping, and the benchmark).


def cluster(
    vectors: np.ndarray,
    rule: Rule,
    fixed: np.ndarray | None = None,
    excluded: dict[int, set[int]] | None = None,
    first_label: int = 0,
    progress: Progress | None = None,
) -> np.ndarray:
    """A label per face: a group (>= 0) or -1 for none.

    fixed[i] >= 0 pins face i to that label (hidden and kept groups): pinned faces are not re-clustered,
    others may join them. excluded[i] lists labels face i must not get. New clusters are numbered from
    first_label, which must be above every fixed label.
    """
    count = len(vectors)
    fixed = np.full(count, -1, np.int64) if fixed is None else np.asarray(fixed, np.int64)
    excluded = excluded or {}
    labels = fixed.copy()
    report = progress or (lambda done: None)
    # The one pass over the pairs is the cost: 90% of the progress; saving is the rest.
    i, j, d = close_pairs(vectors, rule.join, progress=lambda done: report(0.9 * done))
    free = fixed < 0
    link = np.flatnonzero((d < rule.link) & free[i] & free[j])
    link = link[among_nearest(i[link], j[link], d[link], WHISPER_LINKS)]
    whispers = linked_clusters(count, i[link], j[link], d[link], rule.link)
    found, position, sizes = np.unique(whispers[free], return_inverse=True, return_counts=True)
    shown = sizes >= rule.min_faces
    numbers = np.full(len(found), -1, np.int64)
    numbers[shown] = np.arange(int(shown.sum())) + max(first_label, int(fixed.max(initial=-1)) + 1)
    labels[free] = numbers[position]
    source, target, distance = np.concatenate([i, j]), np.concatenate([j, i]), np.concatenate([d, d])
    fresh = free & (labels >= 0)
    while True:  # members of a fresh cluster whose nearest faces say otherwise leave it
        agreed = agreeing(labels, source, target, distance, rule, own=np.where(fresh, labels, -1))
        leaving = fresh & (agreed < 0)
        if not leaving.any():
            break
        labels[leaving] = -1
        kept, sizes = np.unique(labels[fresh & ~leaving], return_counts=True)
        labels[fresh & np.isin(labels, kept[sizes < rule.min_faces])] = -1
        fresh = free & (labels >= 0)
    while True:  # faces in no group join the group their nearest faces agree on, until none does
        alone = labels[source] < 0
        agreed = agreeing(labels, source[alone], target[alone], distance[alone], rule)
        joining = agreed >= 0
        for face in set(excluded).intersection(np.flatnonzero(joining).tolist()):
            joining[face] = agreed[face] not in excluded[face]
        if not joining.any():
            break
        labels[joining] = agreed[joining]
    return labels


def agreeing(
    labels: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    distance: np.ndarray,
    rule: Rule,
    own: np.ndarray | None = None,
    sizes: dict[int, int] | None = None,
) -> np.ndarray:
    """For each face, the group its nearest faces agree on, or -1: the rule by which a face joins a
    group, and by which a face stays in the cluster chinese_whispers put it in.

    labels: each face's group, -1 for none; (source, target, distance): target is a neighbour of
    source within the join distance. The group is `own` (a face's cluster) or that of the nearest
    neighbour that counts; it holds when the face's votes_needed nearest neighbours that count are all
    of it. Faces in no group count within the link distance (they may be a
    person of their own with too few faces yet), not beyond. So a face nearer to one face of someone
    else, or to faces in no group, than to the group stays out: a blurred or mirrored photo can be nearer
    to one face of another person than to its own (README, "Who is this?"), but not to several of them.
    sizes: each group's faces, when labels do not hold them all (an incremental run)."""
    count = len(labels)
    group = labels[target]
    order = np.lexsort((distance, source))
    counts = (group[order] >= 0) | (distance[order] < rule.link)
    source, group = source[order][counts], group[order][counts]
    first = np.r_[True, source[1:] != source[:-1]] if len(source) else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    rank = np.arange(len(source)) - np.repeat(starts, np.diff(np.r_[starts, len(source)]))
    if own is None:
        candidate = np.full(count, -1, np.int64)
        candidate[source[first]] = group[first]
    else:
        candidate = np.asarray(own, np.int64)
    has = candidate >= 0
    others = np.zeros(count, np.int64)
    if sizes is None:
        known, counted = np.unique(labels[labels >= 0], return_counts=True)
        others[has] = counted[np.searchsorted(known, candidate[has])]
    else:
        others[has] = [sizes.get(group, 0) for group in candidate[has].tolist()]
    others -= own is not None  # a member's own face is not a vote
    needed = rule.votes_needed(others, member=own is not None)
    inside = (rank < needed[source]) & (group == candidate[source])
    agreed = np.bincount(source[inside], minlength=count) == needed
    return np.where(agreed & has, candidate, -1)


# The packed index of an owner's encodings.


class FaceIndex:
    """The owner's FaceIndexChunk rows: scanned chunk by chunk, so memory stays one chunk deep."""

    DTYPE = np.float16

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        rows = FaceIndexChunk.objects.filter(owner_id=self.owner_id).values_list("face_ids", "encodings")
        for ids, encodings in rows.iterator(chunk_size=4):
            vectors = np.frombuffer(encodings, self.DTYPE).reshape(-1, ENCODING_SIZE).astype(ENCODING_DTYPE)
            yield np.frombuffer(ids, np.int64), vectors

    def neighbours(self, probes: np.ndarray, within: float) -> list[dict[int, float]]:
        """For each probe, {face id: distance} of the indexed faces within `within`."""
        found: list[dict[int, float]] = [{} for _ in range(len(probes))]
        if not len(probes):
            return found
        for ids, encodings in self.chunks():
            for row, column, distance in zip(*pairs_within(probes, encodings, within), strict=True):
                face_id = int(ids[column])
                found[row][face_id] = min(float(distance), found[row].get(face_id, math.inf))
        return found

    def append(self, ids: np.ndarray, encodings: np.ndarray) -> None:
        """Add faces in a row of their own, packing the small rows once there are many.

        The caller holds the owner's grouping lock (one run per owner)."""
        self._write(np.asarray(ids, np.int64), np.asarray(encodings).reshape(-1, ENCODING_SIZE))
        small = FaceIndexChunk.objects.filter(owner_id=self.owner_id, count__lt=FaceIndexChunk.CHUNK_FACES)
        if small.count() > FaceIndexChunk.SMALL_CHUNKS:
            rows = list(small.order_by("id").values_list("pk", "face_ids", "encodings"))
            packed_ids = np.concatenate([np.frombuffer(row[1], np.int64) for row in rows])
            packed = np.concatenate([np.frombuffer(row[2], self.DTYPE).reshape(-1, ENCODING_SIZE) for row in rows])
            FaceIndexChunk.objects.filter(pk__in=[row[0] for row in rows]).delete()
            self._write(packed_ids, packed)

    def _write(self, ids: np.ndarray, encodings: np.ndarray) -> None:
        encodings = np.asarray(encodings, self.DTYPE)
        size = FaceIndexChunk.CHUNK_FACES
        FaceIndexChunk.objects.bulk_create(
            [
                FaceIndexChunk(
                    owner_id=self.owner_id,
                    face_ids=ids[start : start + size].tobytes(),
                    encodings=encodings[start : start + size].tobytes(),
                    count=len(ids[start : start + size]),
                )
                for start in range(0, len(ids), size)
            ]
        )

    def rebuild(self, ids: np.ndarray, encodings: np.ndarray) -> None:
        FaceIndexChunk.objects.filter(owner_id=self.owner_id).delete()
        self._write(np.asarray(ids, np.int64), encodings)


# Database runs.


def _stack(encodings: list[bytes]) -> np.ndarray:
    if not encodings:
        return np.empty((0, ENCODING_SIZE), ENCODING_DTYPE)
    return np.stack([encoding_from_bytes(encoding) for encoding in encodings])


def _exclusions(face_ids: list[int]) -> dict[int, set[int]]:
    through = Face.excluded_groups.through
    found: dict[int, set[int]] = defaultdict(set)
    for start in range(0, len(face_ids), 5000):
        rows = through.objects.filter(face_id__in=face_ids[start : start + 5000]).values_list("face_id", "facegroup_id")
        for face_id, group_id in rows:
            found[face_id].add(group_id)
    return found


def _group_sizes(group_ids) -> dict[int, int]:
    rows = (
        Face.objects.filter(group_id__in=list(group_ids), person__isnull=True)
        .values("group_id")
        .annotate(size=Count("id"))
        .values_list("group_id", "size")
    )
    return dict(rows)


def _unknown_state(owner_id: int, face_ids) -> dict[int, int | None]:
    """{face id: group id or None} of those faces that still exist and match nobody."""
    face_ids = list(face_ids)
    state: dict[int, int | None] = {}
    for start in range(0, len(face_ids), 5000):
        # The ids come from the owner's index and new faces: no need to join the photos for the owner.
        rows = Face.objects.filter(pk__in=face_ids[start : start + 5000], person__isnull=True).values_list(
            "pk", "group_id"
        )
        state.update(rows)
    return state


def group_new_faces(owner_id: int) -> dict:
    """The incremental run: every face of the owner that no run has seen yet, in batches."""
    totals = Counter()
    # A few faces against a chunk are small matrix products: BLAS threads only spin for the CPU (measured:
    # half the CPU time of a scan of 100,000 faces goes to them on a busy machine).
    with _blas().limit(limits=1, user_api="blas"):
        while True:
            step = _group_batch(owner_id, INCREMENTAL_BATCH)
            totals.update(step)
            if step["faces"] < INCREMENTAL_BATCH:
                break
    return {"owner": owner_id, **{key: value for key, value in totals.items() if value}}


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _unseen_faces(owner_id: int, most: int) -> list[tuple]:
    """(id, encoding, person id, group id) of the owner's faces no run has seen, oldest first.

    Through the partial index face_not_indexed: joined to the photos, the database would read every
    face of the owner to find these few."""
    pending = list(Face.objects.filter(indexed=False).order_by("pk").values_list("pk", "photo_id")[: most * 20])
    photo_ids = {photo_id for _, photo_id in pending}
    mine = set(Photo.objects.filter(pk__in=photo_ids, owner_id=owner_id).values_list("pk", flat=True))
    ids = [face_id for face_id, photo_id in pending if photo_id in mine][:most]
    rows = Face.objects.filter(pk__in=ids).order_by("pk").values_list("pk", "encoding", "person_id", "group_id")
    return list(rows)


@transaction.atomic
def _group_batch(owner_id: int, batch: int) -> dict:
    rows = _unseen_faces(owner_id, batch)
    if not rows:
        return {"faces": 0}
    rule = Rule.from_settings()
    ids = np.array([row[0] for row in rows], np.int64)
    vectors = _stack([row[1] for row in rows])
    # Unknown and in no group yet (a reprocessed face keeps its group: it has nothing to decide).
    todo = [k for k, row in enumerate(rows) if row[2] is None and row[3] is None]
    index = FaceIndex(owner_id)
    joined = created = 0
    if todo:
        joined, created = _place(owner_id, ids[todo], vectors[todo], index, rule)
    index.append(ids, vectors)
    Face.objects.filter(pk__in=ids.tolist()).update(indexed=True)
    return {"faces": len(rows), "joined": joined, "new_groups": created}


def _place(owner_id: int, ids: np.ndarray, vectors: np.ndarray, index: FaceIndex, rule: Rule) -> tuple[int, int]:
    """Join new faces to groups, or form new groups of them and the ungrouped faces nearby."""
    near = index.neighbours(vectors, rule.join)
    i, j, d = pairs_within(vectors, vectors, rule.join)  # among the new faces themselves
    for row, column, distance in zip(i.tolist(), j.tolist(), d.tolist(), strict=True):
        if row != column:
            near[row][int(ids[column])] = distance
    new_ids = set(ids.tolist())
    state = _unknown_state(owner_id, {face for hits in near for face in hits} - new_ids)
    state.update(dict.fromkeys(new_ids))
    excluded = _exclusions(list(new_ids))
    joined = _join(ids, near, state, excluded, rule)
    leftover = [row for row, face_id in enumerate(ids.tolist()) if state[face_id] is None]
    formed = _form_groups(owner_id, ids[leftover], vectors[leftover], [near[row] for row in leftover], state,
                          index, rule)  # fmt: skip
    if formed:  # faces near a group formed just now may join it by the vote rule, as a full run would
        state.update(_unknown_state(owner_id, [face for face, group in state.items() if group is None]))
        joined += _join(ids[leftover], [near[row] for row in leftover], state, excluded, rule)
    return joined, formed


def _join(ids: np.ndarray, near: list[dict[int, float]], state: dict, excluded: dict, rule: Rule) -> int:
    """Put each new face in no group into the group its nearest faces agree on (agreeing), round after
    round (a face that joins may tip the next); state is updated as they join."""
    new_ids = ids.tolist()
    others = sorted({other for hits in near for other in hits if other in state} - set(new_ids))
    position = {face: k for k, face in enumerate(new_ids + others)}
    pairs = [(row, position[other], between) for row, hits in enumerate(near) for other, between in hits.items()
             if other in position and other != new_ids[row]]  # fmt: skip
    if not pairs:
        return 0
    source, target = (np.array(column, np.int64) for column in list(zip(*pairs, strict=True))[:2])
    distance = np.array([between for _, _, between in pairs], ENCODING_DTYPE)
    sizes = _group_sizes({group for group in state.values() if group is not None})
    assignments: dict[int, int] = {}
    while True:
        labels = np.array([state.get(face) or -1 for face in position], np.int64)
        alone = labels[source] < 0
        agreed = agreeing(labels, source[alone], target[alone], distance[alone], rule, sizes=sizes)
        joining = [(face, int(agreed[row])) for row, face in enumerate(new_ids)
                   if agreed[row] >= 0 and agreed[row] not in excluded.get(face, ())]  # fmt: skip
        if not joining:
            break
        for face, group in joining:
            state[face] = assignments[face] = group
            sizes[group] = sizes.get(group, 0) + 1
    for group_id in set(assignments.values()):
        Face.objects.filter(pk__in=[f for f, g in assignments.items() if g == group_id]).update(group_id=group_id)
    return len(assignments)


def _form_groups(owner_id, ids, vectors, near, state, index: FaceIndex, rule: Rule) -> int:
    """Chinese whispers over the new faces left and the ungrouped faces within two links of them."""
    if not len(ids):
        return 0
    new_ids = set(ids.tolist())
    linked = {other for hits in near for other, dist in hits.items() if dist < rule.link and other not in new_ids}
    ungrouped = sorted(face for face in linked if face in state and state[face] is None)
    encodings = dict(Face.objects.filter(pk__in=ungrouped).values_list("pk", "encoding"))
    ungrouped = [face for face in ungrouped if face in encodings]
    around = _stack([encodings[face] for face in ungrouped])
    # One more hop: the ungrouped faces linked to those.
    second = {other for hits in index.neighbours(around, rule.link) for other in hits} - new_ids - set(ungrouped)
    second_state = _unknown_state(owner_id, second)
    more = sorted(face for face, group in second_state.items() if group is None)
    encodings.update(Face.objects.filter(pk__in=more).values_list("pk", "encoding"))
    members = ids.tolist() + ungrouped + [face for face in more if face in encodings]
    everything = np.concatenate([vectors, _stack([encodings[face] for face in members[len(ids) :]])])
    i, j, d = pairs_within(everything, everything, rule.link, upper=True)
    labels = chinese_whispers(len(members), nearest_links(i, j, d, rule.link))
    clusters: dict[int, list[int]] = defaultdict(list)
    for position, label in enumerate(labels.tolist()):
        clusters[label].append(members[position])
    created = 0
    for faces in clusters.values():
        if len(faces) >= rule.min_faces and new_ids.intersection(faces):
            group = FaceGroup.objects.create(owner_id=owner_id)
            Face.objects.filter(pk__in=faces).update(group=group)
            created += 1
    return created


def regroup_owner(owner_id: int, progress: Progress | None = None) -> dict:
    """Regroup every unknown face of the owner from scratch, keeping the user's decisions; rebuilds the index."""
    rule = Rule.from_settings()
    rows = Face.objects.filter(photo__owner_id=owner_id).order_by("pk")
    total = rows.count()
    ids = np.empty(total, np.int64)
    vectors = np.empty((total, ENCODING_SIZE), ENCODING_DTYPE)
    unknown = np.zeros(total, bool)
    current = np.full(total, -1, np.int64)
    position = 0
    for face_id, encoding, person_id, group_id in rows.values_list("pk", "encoding", "person_id", "group_id").iterator(
        chunk_size=5000
    ):
        if position == total:
            break  # faces added since the count wait for the next incremental run
        ids[position], vectors[position] = face_id, encoding_from_bytes(encoding)
        unknown[position], current[position] = person_id is None, group_id if group_id is not None else -1
        position += 1
    ids, vectors, unknown, current = ids[:position], vectors[:position], unknown[:position], current[:position]
    groups = FaceGroup.objects.filter(owner_id=owner_id)
    kept_groups = set(groups.filter(Q(kept=True) | Q(hidden=True)).values_list("pk", flat=True))
    subset = np.flatnonzero(unknown)
    sub_current = current[subset]
    fixed = np.where(np.isin(sub_current, list(kept_groups)), sub_current, -1)
    # Fresh cluster labels start above every group id, so a label is either a kept group's id or new.
    first_label = int(groups.aggregate(top=Max("pk"))["top"] or 0) + 1
    excluded_by_id = _exclusions(ids[subset].tolist())
    position_of = {int(face_id): k for k, face_id in enumerate(ids[subset].tolist())}
    excluded = {position_of[face]: groups for face, groups in excluded_by_id.items() if face in position_of}
    labels = cluster(vectors[subset], rule, fixed=fixed, excluded=excluded, first_label=first_label,
                     progress=progress)  # fmt: skip
    with transaction.atomic():
        made = _save_labels(owner_id, ids[subset], sub_current, labels, kept_groups, excluded_by_id)
        FaceIndex(owner_id).rebuild(ids, vectors)
        _mark_indexed(ids)
    if progress is not None:
        progress(1.0)
    return {"owner": owner_id, "faces": int(len(ids)), "unknown": int(len(subset)), **made}


def _mark_indexed(ids: np.ndarray) -> None:
    for start in range(0, len(ids), 5000):
        Face.objects.filter(pk__in=ids[start : start + 5000].tolist()).update(indexed=True)


def _save_labels(owner_id, face_ids, current, labels, kept_groups, excluded_by_id) -> dict:
    """Turn fresh cluster labels into groups: each takes over the existing group it shares most faces with."""
    members: dict[int, list[int]] = defaultdict(list)
    for face_id, label in zip(face_ids.tolist(), labels.tolist(), strict=True):
        if label >= 0:
            members[label].append(face_id)
    overlap: Counter = Counter()
    for label, group in zip(labels.tolist(), current.tolist(), strict=True):
        if label >= 0 and label not in kept_groups and group >= 0 and group not in kept_groups:
            overlap[(label, group)] += 1
    target: dict[int, int] = {label: label for label in members if label in kept_groups}
    taken = set()
    for (label, group), _ in overlap.most_common():
        if label not in target and group not in taken:
            target[label], taken = group, taken | {group}
    live = set(FaceGroup.objects.filter(owner_id=owner_id).values_list("pk", flat=True))
    fresh = [label for label in members if label not in target or target[label] not in live]
    made = FaceGroup.objects.bulk_create([FaceGroup(owner_id=owner_id) for _ in fresh], batch_size=1000)
    target.update(zip(fresh, (group.pk for group in made), strict=True))
    assigned: dict[int, list[int]] = defaultdict(list)
    for label, faces in members.items():
        group = target[label]
        assigned[group].extend(face for face in faces if group not in excluded_by_id.get(face, ()))
    final = dict.fromkeys(face_ids.tolist(), -1)
    final.update((face, group) for group, faces in assigned.items() for face in faces)
    _set_groups([(face, group) for (face, group), old in zip(final.items(), current.tolist(), strict=True)
                 if group != old])  # fmt: skip
    # Groups that lost every face to the new clustering go, unless the user shaped or hid them.
    stale = FaceGroup.objects.filter(owner_id=owner_id, kept=False, hidden=False).exclude(pk__in=list(assigned))
    removed = stale.count()
    stale.delete()
    return {"groups": len(assigned), "new_groups": len(fresh), "removed_groups": removed}


def _set_groups(changes: list[tuple[int, int]]) -> None:
    """Set the group (-1: none) of many faces: one statement run for every row (executemany), where the
    ORM would need one UPDATE per group (measured: 10,000 new groups cost 20 s of CPU that way)."""
    quote = connection.ops.quote_name
    table, pk, column = Face._meta.db_table, Face._meta.pk.column, Face._meta.get_field("group").column
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE {quote(pk)} = %s",
            [(None if group < 0 else group, face) for face, group in changes],
        )


# What the pages and the API show.


def suggestions(samples: dict[int, np.ndarray], gallery: Gallery) -> dict[int, tuple[int, float]]:
    """{group id: (person id, distance)} for groups whose faces are, on average, near a known person."""
    found = {}
    if not len(gallery):
        return found
    for group_id, vectors in samples.items():
        if not len(vectors):
            continue
        per_person = gallery.person_distances(vectors).mean(axis=0)
        best = int(np.argmin(per_person))
        if per_person[best] <= settings.FACES_GROUP_SUGGEST_DISTANCE:
            found[group_id] = (int(gallery.people[best]), round(float(per_person[best]), 3))
    return found


def describe(groups: list[FaceGroup], owner_id: int, sample: int = 6) -> list[FaceGroup]:
    """Give each group .sample (its largest faces, up to `sample`) and .suggestion ((person, distance) or None)."""
    samples = {}
    for group in groups:
        group.sample = list(group.faces_largest_first().select_related("photo")[:sample])
        samples[group.pk] = _stack([bytes(face.encoding) for face in group.sample])
    found = suggestions(samples, Gallery.for_owner(owner_id)) if groups else {}
    people = Person.objects.in_bulk([person_id for person_id, _ in found.values()])
    for group in groups:
        person_id, distance = found.get(group.pk, (None, None))
        group.suggestion = (people[person_id], distance) if person_id in people else None
    return groups
