"""Grouping unknown faces (recognition.grouping) and the user's decisions on groups, on stored encodings.

The nearest-neighbour search and the clustering are checked against brute force and on synthetic
people; the runs on the database use Face rows with those encodings (no photo decoding needed). The
same on real photos with a real worker is in tests/test_group_faces.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from recognition import curation, engine, grouping
from recognition.grouping import Rule
from recognition.models import Face, FaceGroup, FaceIndexChunk, Person, Photo, PhotoStatus, ReferencePhoto

RULE = Rule(link=0.45, join=0.53, votes=3, min_faces=3)


class People:
    """Synthetic people: a centre each (about 0.9 apart), faces about 0.3 from each other."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres: dict[str, np.ndarray] = {}

    def face(self, who: str, spread: float = 0.3) -> np.ndarray:
        if who not in self.centres:
            self.centres[who] = self.rng.normal(0, 0.0575, 128).astype(np.float32)
        noise = self.rng.normal(0, spread / 16, 128).astype(np.float32)  # |a - b| ~ spread for two faces
        return self.centres[who] + noise


def test_pairs_within_is_brute_force_in_blocks(monkeypatch):
    monkeypatch.setattr(grouping, "BLOCK_ROWS", 7)
    monkeypatch.setattr(grouping, "BLOCK_COLUMNS", 11)
    people = People()
    vectors = np.stack([people.face(f"p{k % 9}", spread=0.5) for k in range(60)])
    i, j, d = grouping.pairs_within(vectors, vectors, 0.45, upper=True)
    brute = np.linalg.norm(vectors[:, None] - vectors[None, :], axis=2)
    expected = {(a, b) for a, b in zip(*np.nonzero(brute < 0.45), strict=True) if a < b}
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected
    assert np.allclose(d, brute[i, j], atol=1e-4)


def test_nearest_links_keep_each_face_s_nearest():
    # One face near 10 others: with most=3 it keeps its 3 nearest, and each other face keeps its link.
    i = np.zeros(10, np.int64)
    j = np.arange(1, 11)
    d = np.linspace(0.1, 0.4, 10).astype(np.float32)
    links = grouping.nearest_links(i, j, d, link=0.45, most=3)
    assert len(links) == 10  # every leaf's only link is its nearest
    assert links[0][2] > links[-1][2] > 0  # nearer, stronger
    # Each face's single nearest link: 1-2 (0.4) is nobody's nearest and goes.
    links = grouping.nearest_links(
        np.array([0, 0, 0, 1]), np.array([1, 2, 3, 2]), np.array([0.1, 0.2, 0.3, 0.4]), 0.45, 1
    )
    assert [link[:2] for link in links] == [(0, 1), (0, 2), (0, 3)]


def test_cluster_makes_one_group_per_person_and_none_of_strangers():
    people = People()
    faces = [people.face("ann") for _ in range(8)] + [people.face("bob") for _ in range(4)]
    faces += [people.face(f"stranger{k}") for k in range(40)]
    truth = ["ann"] * 8 + ["bob"] * 4 + [f"s{k}" for k in range(40)]
    labels = grouping.cluster(np.stack(faces), RULE)
    groups = {label: {truth[k] for k in np.flatnonzero(labels == label)} for label in set(labels.tolist()) - {-1}}
    assert sorted(map(sorted, groups.values())) == [["ann"], ["bob"]]
    assert (labels[:8] == labels[0]).all() and (labels[8:12] == labels[8]).all() and (labels[12:] == -1).all()


def test_a_face_nearer_one_face_of_someone_else_than_its_own_never_mixes_two_people():
    # What the portrait variants showed (README "Who is this?"): x, a blurred photo of b, is 0.41 from one
    # face of a but 0.54 from a's others, and 0.42 from b's two faces. One link to a is not enough.
    axis = np.eye(128, dtype=np.float32)
    a = [0 * axis[0], 0.2 * axis[1], 0.2 * axis[2]]
    x = -0.2 * axis[1] - 0.2 * axis[2] - 0.3 * axis[3]
    b = [x + 0.42 * axis[4], x + 0.40 * axis[4] + 0.12 * axis[5]]
    # A face 0.49 from each of a's three, but 0.3 from a twin in no group (a person of their own) stays out.
    twin = 0.1 * axis[1] + 0.1 * axis[2] + 0.47 * axis[6]
    twins = [twin, twin + 0.3 * axis[7]]
    vectors = np.stack([*a, x, *b, *twins])
    labels = grouping.cluster(vectors, RULE)
    assert labels[0] >= 0 and (labels[:3] == labels[0]).all()
    assert labels[0] not in labels[3:].tolist()


def test_cluster_keeps_pinned_faces_and_exclusions():
    people = People()
    vectors = np.stack([people.face("ann") for _ in range(6)])
    fixed = np.array([70, 70, -1, -1, -1, -1])  # faces 0-1 are a kept group, 70
    labels = grouping.cluster(vectors, RULE, fixed=fixed, excluded={5: {70}}, first_label=100)
    assert labels[:2].tolist() == [70, 70]
    # The other faces link among themselves (a new cluster) or join 70; face 5 never gets 70.
    assert labels[5] != 70


def test_a_face_joins_the_group_its_nearest_faces_agree_on():
    # Face 0 has no group; faces 1-6 are group 7, 7-8 group 8, 9 is in none. Its nearest 3 decide.
    labels = np.array([-1, 7, 7, 7, 7, 7, 7, 8, 8, -1])

    def agreed(*neighbours: tuple[int, float], own=None) -> int:
        target = np.array([face for face, _ in neighbours], np.int64)
        distance = np.array([between for _, between in neighbours], np.float32)
        return int(grouping.agreeing(labels, np.zeros(len(target), np.int64), target, distance, RULE, own)[0])

    assert agreed((1, 0.3), (2, 0.5), (3, 0.52)) == 7
    assert agreed((1, 0.5), (2, 0.51)) == -1  # two votes: not enough
    assert agreed((1, 0.3), (7, 0.4), (2, 0.5), (3, 0.52)) == -1  # a face of another group nearer than 3 of 7
    assert agreed((7, 0.3), (8, 0.4)) == 8  # all of a group of 2 (not shown, but a kept group may shrink)
    assert agreed((7, 0.3), (1, 0.4)) == -1
    assert agreed((1, 0.3), (9, 0.4), (2, 0.5), (3, 0.52)) == -1  # a face in no group, linked: maybe its own
    assert agreed((1, 0.3), (9, 0.5), (2, 0.5), (3, 0.52)) == 7  # ...not linked: no evidence either way
    assert agreed((9, 0.3), (1, 0.4), (2, 0.41), (3, 0.42)) == -1  # nearest of all is in no group
    # A member stays in its cluster when its nearest 3 faces (half of the others in a smaller one) are of it.
    own = np.array([7] + [-1] * 9)
    assert agreed((1, 0.3), (2, 0.4), (3, 0.45), (5, 0.5), own=own) == 7
    assert agreed((7, 0.3), (1, 0.4), (2, 0.45), (3, 0.5), own=own) == -1


# On the database.


@pytest.fixture
def make_photo(user):
    def make(*vectors: np.ndarray, owner=None) -> Photo:
        photo = Photo.objects.create(owner=owner or user, image="photos/x/p.jpg", status=PhotoStatus.DONE,
                                     width=1000, height=1000)  # fmt: skip
        for k, vector in enumerate(vectors):
            Face.objects.create(photo=photo, top=10, left=10 + 200 * k, bottom=110, right=110 + 200 * k,
                                encoding=engine.encoding_to_bytes(vector))  # fmt: skip
        return photo

    return make


def group_of(photo: Photo) -> FaceGroup | None:
    return photo.faces.get().group


def test_incremental_runs_grow_groups_photo_by_photo(user, make_photo, settings):
    people = People()
    ann = [make_photo(people.face("ann"))]
    grouping.group_new_faces(user.pk)
    ann.append(make_photo(people.face("ann")))
    assert "new_groups" not in grouping.group_new_faces(user.pk)  # two faces: not a group yet
    ann.append(make_photo(people.face("ann")))
    stranger = make_photo(people.face("zed"))
    step = grouping.group_new_faces(user.pk)
    assert step["faces"] == 2 and step["new_groups"] == 1
    group = group_of(ann[0])
    assert group is not None and {group_of(photo) for photo in ann} == {group}
    assert group_of(stranger) is None

    # A later face joins the group; the run looks at it alone (the index, not every face row).
    ann.append(make_photo(people.face("ann")))
    step = grouping.group_new_faces(user.pk)
    assert step == {"owner": user.pk, "faces": 1, "joined": 1}
    assert group_of(ann[-1]) == group
    assert sum(chunk.count for chunk in FaceIndexChunk.objects.filter(owner=user)) == 5
    assert grouping.group_new_faces(user.pk) == {"owner": user.pk}  # nothing new: nothing done
    assert [g.size for g in FaceGroup.objects.shown(user)] == [4]


def test_index_spans_several_chunks_and_packs_small_ones(user, make_photo, monkeypatch):
    monkeypatch.setattr(FaceIndexChunk, "CHUNK_FACES", 4)
    monkeypatch.setattr(FaceIndexChunk, "SMALL_CHUNKS", 2)
    people = People()
    photos = [make_photo(people.face("ann"), people.face(f"x{k}")) for k in range(5)]
    grouping.group_new_faces(user.pk)
    assert list(FaceIndexChunk.objects.filter(owner=user).values_list("count", flat=True)) == [4, 4, 2]
    group = FaceGroup.objects.get()
    assert group.unknown_faces().count() == 5
    late = []
    for _ in range(3):  # one small row per run, packed once there are more than 2
        late.append(make_photo(people.face("ann")))
        grouping.group_new_faces(user.pk)
    assert sorted(FaceIndexChunk.objects.filter(owner=user).values_list("count", flat=True)) == [1, 4, 4, 4]
    assert {group_of(photo) for photo in late} == {group} and len(photos) == 5
    index = grouping.FaceIndex(user.pk)
    ids = np.concatenate([ids for ids, _ in index.chunks()])
    assert sorted(ids.tolist()) == sorted(Face.objects.values_list("pk", flat=True))


def test_a_face_taken_out_never_rejoins(user, make_photo):
    people = People()
    photos = [make_photo(people.face("ann")) for _ in range(5)]
    grouping.group_new_faces(user.pk)
    group = FaceGroup.objects.get()
    out = photos[0].faces.get()
    assert group.remove_faces([out.pk]) == 1
    out.refresh_from_db()
    assert out.group is None and list(out.excluded_groups.all()) == [group]

    grouping.regroup_owner(user.pk)
    out.refresh_from_db()
    assert out.group is None
    assert FaceGroup.objects.get() == group and group.unknown_faces().count() == 4

    # Reprocessing makes a new face row for the same face: the decision carries over by overlap.
    new = Face.objects.create(photo=photos[0], top=10, left=12, bottom=110, right=112, encoding=out.encoding)
    new.carry_decisions_from(out)
    out.delete()
    grouping.group_new_faces(user.pk)
    new.refresh_from_db()
    assert new.group is None and list(new.excluded_groups.all()) == [group]


def test_remove_refuses_faces_of_another_group_and_changes_nothing(user, make_photo):
    people = People()
    for who in ("ann", "bob"):
        for _ in range(3):
            make_photo(people.face(who))
    grouping.group_new_faces(user.pk)
    first, second = FaceGroup.objects.all()
    with pytest.raises(ValueError):
        first.remove_faces([first.faces.first().pk, second.faces.first().pk])
    with pytest.raises(ValueError):
        first.remove_faces([])
    assert first.unknown_faces().count() == 3 and not Face.excluded_groups.through.objects.exists()


def test_a_hidden_group_takes_new_faces_silently_and_stays_hidden(user, make_photo):
    people = People()
    for _ in range(3):
        make_photo(people.face("ann"))
    grouping.group_new_faces(user.pk)
    group = FaceGroup.objects.get()
    group.hide()
    assert not FaceGroup.objects.shown(user).exists()
    late = make_photo(people.face("ann"))
    grouping.group_new_faces(user.pk)
    assert group_of(late) == group
    grouping.regroup_owner(user.pk)
    assert list(FaceGroup.objects.shown(user, hidden=True)) == [group]
    assert group.unknown_faces().count() == 4 and not FaceGroup.objects.shown(user).exists()


def test_merge_moves_faces_and_exclusions(user, other_user, make_photo):
    people = People()
    photos = {who: [make_photo(people.face(who)) for _ in range(3)] for who in ("ann", "annie")}
    grouping.group_new_faces(user.pk)
    ann, annie = group_of(photos["ann"][0]), group_of(photos["annie"][0])
    annie.remove_faces([photos["annie"][0].faces.get().pk])
    merged = annie.merge_into(ann)
    assert merged == ann and ann.kept and not FaceGroup.objects.filter(pk=annie.pk).exists()
    assert ann.unknown_faces().count() == 5
    assert list(photos["annie"][0].faces.get().excluded_groups.all()) == [ann]
    theirs = FaceGroup.objects.create(owner=other_user)
    with pytest.raises(ValueError):
        ann.merge_into(theirs)
    with pytest.raises(ValueError):
        ann.merge_into(ann)


def test_full_regroup_finds_what_incremental_runs_missed_and_keeps_ids(user, make_photo):
    people = People()
    # Faces indexed before grouping existed (or with other settings): nothing grouped yet.
    photos = [make_photo(people.face("ann")) for _ in range(4)] + [make_photo(people.face("bob")) for _ in range(3)]
    grouping.group_new_faces(user.pk)
    before = {photo.pk: group_of(photo).pk for photo in photos}
    result = grouping.regroup_owner(user.pk)
    assert result["groups"] == 2 and result["new_groups"] == 0 and result["removed_groups"] == 0
    assert {photo.pk: group_of(photo).pk for photo in photos} == before  # same groups, same ids

    Face.objects.update(group=None, indexed=False)
    FaceIndexChunk.objects.all().delete()
    progress = []
    result = grouping.regroup_owner(user.pk, progress=progress.append)
    assert result["groups"] == 2 and progress[-1] == 1.0
    assert len({group_of(photo) for photo in photos[:4]}) == 1 and group_of(photos[4]) != group_of(photos[0])
    assert sum(chunk.count for chunk in FaceIndexChunk.objects.filter(owner=user)) == 7
    assert not Face.objects.filter(indexed=False).exists()


@pytest.mark.django_db(transaction=True)  # run_jobs' work horses see only committed rows
def test_naming_a_group_names_every_face_and_makes_references(user, make_photo, redis_server, run_jobs):
    people = People()
    photos = [make_photo(people.face("ann")) for _ in range(7)]
    grouping.group_new_faces(user.pk)
    group = FaceGroup.objects.get()
    ann = Person.objects.create(owner=user, name="Ann")
    # References are crops of the photos: these rows have no image file, so none can be made...
    assert curation.name_group(group, ann) == 7
    assert not FaceGroup.objects.exists()
    assert all(face.person == ann and face.named_by_user for face in Face.objects.all())
    assert len(photos) == 7 and not ReferencePhoto.objects.exists()
    assert run_jobs() >= 1  # ...and the re-match it queued runs, cleanly (a failing job fails the test)


def test_best_faces_are_large_sharp_and_from_different_photos(user):
    from tests.conftest import stored_photo

    sharp = stored_photo(user, "people/obama/portrait_2012.jpg", status=PhotoStatus.DONE)
    small = stored_photo(user, "people/obama/portrait_2012_crop_small.jpg", status=PhotoStatus.DONE)
    faces = []
    for photo in (sharp, small):
        analysis = engine.detect_faces(photo.image.path)
        photo.store_renditions(analysis.preview)  # what the photo job makes: faces are cut from these
        photo.replace_faces(analysis, photo.store_face_crops(analysis.preview, [f.box for f in analysis.faces],
                                                             analysis.width))  # fmt: skip
        faces += list(photo.faces.all())
    # A second, smaller face box in the same photo is never chosen over that photo's largest face.
    extra = Face.objects.create(photo=sharp, top=0, left=0, bottom=40, right=40, encoding=faces[0].encoding)
    chosen = curation.best_faces([*faces, extra], most=5)
    assert {face.photo_id for face, _ in chosen} == {sharp.pk, small.pk}
    assert extra not in [face for face, _ in chosen]
    assert all(picture.startswith(b"\xff\xd8") for _, picture in chosen)  # JPEGs of the faces


def test_suggestion_names_a_known_person_near_the_group(user, make_photo):
    people = People()
    for _ in range(3):
        make_photo(people.face("ann", spread=0.2))
    grouping.group_new_faces(user.pk)
    group = FaceGroup.objects.get()
    ann = Person.objects.create(owner=user, name="Ann")
    # A reference 0.55-0.6 from the faces: no match, but a good guess.
    centre = people.centres["ann"]
    direction = np.random.default_rng(5).normal(0, 1, 128).astype(np.float32)
    reference = centre + direction / np.linalg.norm(direction) * 0.55
    ReferencePhoto.objects.create(person=ann, image="references/x/a.jpg", status="done",
                                  encoding=engine.encoding_to_bytes(reference))  # fmt: skip
    [described] = grouping.describe([FaceGroup.objects.with_size().get()], user.pk)
    person, distance = described.suggestion
    assert person == ann and 0.5 < distance <= 0.6 and len(described.sample) == 3
    ReferencePhoto.objects.update(encoding=engine.encoding_to_bytes(centre + direction / np.linalg.norm(direction)))
    assert grouping.describe([FaceGroup.objects.with_size().get()], user.pk)[0].suggestion is None
    assert group.pk == described.pk
