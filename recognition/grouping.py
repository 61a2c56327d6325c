"""Grouping the faces that match nobody into people to name ("Who is this?").

The method, in the terms of recognition.matching's distances (settings, README "Who is this?"):

- Two unknown faces within FACES_GROUP_DISTANCE are linked; dlib's chinese_whispers labels the linked
  graph, and a cluster of FACES_GROUP_MIN_FACES or more is a group. Each face keeps only its nearest
  links (MAX_LINKS), so a person with thousands of faces costs edges in proportion, not squared.
- A face that is no group's by a link joins a group when it is within FACES_GROUP_JOIN_DISTANCE of
  FACES_GROUP_JOIN_VOTES of the group's faces (or half of a smaller group): a face of the same person seen
  in other light or years sits near many of them, a stranger at most near one.
- Distances are computed by numpy in blocks (BLOCK_ROWS x BLOCK_COLUMNS), never as an n x n matrix.

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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dlib
import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from threadpoolctl import ThreadpoolController

from recognition.engine import ENCODING_DTYPE, ENCODING_SIZE, encoding_from_bytes
from recognition.matching import Gallery
from recognition.models import Face, FaceGroup, FaceIndexChunk, Person, Photo

BLOCK_ROWS = 1024
BLOCK_COLUMNS = 8192
MAX_LINKS = 16  # nearest links kept per face for chinese_whispers
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

    def votes_needed(self, size: int) -> int:
        return max(1, min(self.votes, math.ceil(size / 2)))


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
    """The undirected edges (i < j) that are among the `most` nearest of either end, weighted for
    chinese_whispers: 1 for identical faces down to almost 0 at the link distance, so that a near pair
    outvotes a far one (a lone link between two people does not merge them)."""
    if not len(i):
        return []
    source = np.concatenate([i, j])
    target = np.concatenate([j, i])
    distance = np.concatenate([d, d])
    order = np.lexsort((distance, source))
    source, target, distance = source[order], target[order], distance[order]
    first = np.r_[0, np.flatnonzero(np.diff(source)) + 1]
    rank = np.arange(len(source)) - np.repeat(first, np.diff(np.r_[first, len(source)]))
    keep = rank < most
    low = np.minimum(source[keep], target[keep])
    high = np.maximum(source[keep], target[keep])
    edges, index = np.unique(np.stack([low, high], axis=1), axis=0, return_index=True)
    weights = np.maximum(1.0 - distance[keep][index] / link, 1e-3)
    return [(int(a), int(b), float(w)) for (a, b), w in zip(edges.tolist(), weights.tolist(), strict=True)]


def chinese_whispers(count: int, edges: list[tuple[int, int, float]]) -> np.ndarray:
    """dlib's chinese_whispers labels for count vertices; a vertex with no edge is a cluster of its own."""
    labels = np.arange(count, dtype=np.int64) + count  # past dlib's highest vertex: labels it cannot give
    if edges:
        found = np.asarray(dlib.chinese_whispers(edges), dtype=np.int64)
        labels[: len(found)] = found  # dlib labels 0..k-1, isolated vertices below the highest included
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
    free = np.flatnonzero(fixed < 0)
    labels = fixed.copy()
    next_label = max(first_label, int(fixed.max(initial=-1)) + 1)
    report = progress or (lambda done: None)
    # The two passes over the pairs are the cost: 60% and 30% of the progress; saving is the rest.
    i, j, d = pairs_within(vectors[free], vectors[free], rule.link, upper=True, progress=lambda f: report(0.6 * f))
    whispers = chinese_whispers(len(free), nearest_links(i, j, d, rule.link))
    sizes = Counter(whispers.tolist())
    mapping: dict[int, int] = {}
    for position, label in enumerate(whispers.tolist()):
        if sizes[label] >= rule.min_faces:
            if label not in mapping:
                mapping[label] = next_label
                next_label += 1
            labels[free[position]] = mapping[label]
    _attach(vectors, labels, rule, excluded, progress=lambda f: report(0.6 + 0.3 * f))
    for face, labels_out in excluded.items():
        if labels[face] in labels_out:
            labels[face] = -1
    return labels


def _attach(
    vectors: np.ndarray, labels: np.ndarray, rule: Rule, excluded: dict[int, set[int]], progress: Progress | None = None
) -> None:
    """Faces with no group join one they are linked to, or near enough of (the vote rule)."""
    leftover = np.flatnonzero(labels < 0)
    members = np.flatnonzero(labels >= 0)
    if not len(leftover) or not len(members):
        return
    sizes = Counter(labels[members].tolist())
    i, j, d = pairs_within(vectors[leftover], vectors[members], rule.join, progress=progress)
    near: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for row, column, distance in zip(i.tolist(), j.tolist(), d.tolist(), strict=True):
        near[int(leftover[row])].append((int(labels[members[column]]), distance))
    for face, neighbours in near.items():
        choice = choose_group(neighbours, sizes, rule, excluded.get(face, set()))
        if choice is not None:
            labels[face] = choice


def choose_group(
    neighbours: list[tuple[int, float]], sizes: dict[int, int], rule: Rule, excluded: set[int]
) -> int | None:
    """The group a face joins, from its (group, distance) neighbours within the join distance."""
    allowed = [(group, distance) for group, distance in neighbours if group not in excluded]
    linked = Counter(group for group, distance in allowed if distance < rule.link)
    if linked:
        nearest = {group: min(d for g, d in allowed if g == group) for group in linked}
        return max(linked, key=lambda group: (linked[group], -nearest[group]))
    votes = Counter(group for group, _ in allowed)
    passing = [group for group, count in votes.items() if count >= rule.votes_needed(sizes.get(group, 0))]
    return max(passing, key=lambda group: votes[group]) if passing else None


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
    """Put each face that is in no group into the group choose_group picks; state is updated as they join."""
    sizes = _group_sizes({group for group in state.values() if group is not None})
    assignments: dict[int, int] = {}
    for row, face_id in enumerate(ids.tolist()):
        if state.get(face_id) is not None:
            continue
        neighbours = [(state[other], dist) for other, dist in near[row].items() if state.get(other) is not None]
        choice = choose_group(neighbours, sizes, rule, excluded.get(face_id, set()))
        if choice is not None:
            state[face_id] = assignments[face_id] = choice
            sizes[choice] = sizes.get(choice, 0) + 1
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
    created = 0
    for label in members:
        if label not in target or target[label] not in live:
            target[label] = FaceGroup.objects.create(owner_id=owner_id).pk
            created += 1
    assigned: dict[int, list[int]] = defaultdict(list)
    for label, faces in members.items():
        group = target[label]
        assigned[group].extend(face for face in faces if group not in excluded_by_id.get(face, ()))
    placed = {face for faces in assigned.values() for face in faces}
    ungroup = [face for face in face_ids.tolist() if face not in placed]
    for start in range(0, len(ungroup), 5000):
        Face.objects.filter(pk__in=ungroup[start : start + 5000]).update(group=None)
    for group, faces in assigned.items():
        for start in range(0, len(faces), 5000):
            Face.objects.filter(pk__in=faces[start : start + 5000]).update(group_id=group)
    # Groups that lost every face to the new clustering go, unless the user shaped or hid them.
    stale = FaceGroup.objects.filter(owner_id=owner_id, kept=False, hidden=False).exclude(pk__in=list(assigned))
    removed = stale.count()
    stale.delete()
    return {"groups": len(assigned), "new_groups": created, "removed_groups": removed}


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
