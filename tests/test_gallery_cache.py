"""The gallery cache: a process keeps each owner's gallery under its GalleryVersion, which every change
of the owner's references changes in the same transaction; a stale version reloads."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rq.job import Job

from jobs import galleries
from jobs.enqueue import enqueue_photo, redis_connection
from jobs.process_photo import process_photo
from recognition import curation, engine
from recognition.matching import GALLERIES, Gallery
from recognition.models import Face, GalleryVersion, Person, Photo, PhotoStatus, ReferencePhoto, ReferenceStatus
from tests.conftest import stored_photo
from tests.test_process_photo import upload

REFERENCE_BYTES = 512 + 4 + 8 + 8  # one encoding, its squared norm, one person and where they start


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.09, 128).astype(np.float32)


def make_reference(person: Person, seed: int, status: str = ReferenceStatus.DONE, **fields) -> ReferencePhoto:
    encoding = engine.encoding_to_bytes(vector(seed)) if status == ReferenceStatus.DONE else None
    return ReferencePhoto.objects.create(person=person, image="references/x/r.jpg", status=status, encoding=encoding,
                                         **fields)  # fmt: skip


def same(a: Gallery, b: Gallery) -> bool:
    return np.array_equal(a.encodings, b.encodings) and np.array_equal(a.people, b.people)


@pytest.fixture
def person(user) -> Person:
    person = Person.objects.create(owner=user, name="Ada")
    make_reference(person, 1)
    return person


# Reading.


@pytest.mark.django_db
def test_a_current_gallery_costs_one_query(user, person, django_assert_num_queries):
    first = Gallery.for_owner(user.pk)
    with django_assert_num_queries(1):
        again = Gallery.for_owner(user.pk)
    assert again is first and len(again) == 1


@pytest.mark.django_db
def test_a_gallery_got_earlier_is_rechecked_with_one_query(user, person, django_assert_num_queries):
    loaded = GALLERIES.versioned(user.pk)
    with django_assert_num_queries(1):
        assert GALLERIES.recheck(user.pk, loaded) is loaded[1]
    make_reference(person, 2)  # a change between the two: the recheck gives the gallery as it is now
    assert len(GALLERIES.recheck(user.pk, loaded)) == 2


@pytest.mark.django_db
def test_a_photo_job_reads_the_gallery_before_its_write_transaction(user, person, redis_server):
    """SQLite's write lock is taken when the job's transaction begins: uploads must not wait on a gallery load."""
    photo = stored_photo(user, "people/obama/senate.jpg")
    with CaptureQueriesContext(connection) as queries:
        process_photo(photo.pk)
    sql = [query["sql"] for query in queries.captured_queries]
    gallery_read = next(i for i, q in enumerate(sql) if q.startswith("SELECT") and "referencephoto" in q)
    transaction_begins = next(i for i, q in enumerate(sql) if q.startswith(("BEGIN", "SAVEPOINT")))
    assert gallery_read < transaction_begins
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.DONE


@pytest.mark.django_db
def test_a_missing_version_row_reads_as_zero_and_its_first_change_writes_one(user):
    assert GalleryVersion.current(user.pk) == 0 and not GalleryVersion.objects.exists()
    make_reference(Person.objects.create(owner=user, name="Ada"), 1)
    assert GalleryVersion.current(user.pk) != 0


@pytest.mark.django_db
def test_each_owner_has_their_own_version(user, other_user, person):
    theirs = GalleryVersion.current(other_user.pk)
    make_reference(person, 2)
    assert GalleryVersion.current(other_user.pk) == theirs


@pytest.mark.django_db
def test_a_damaged_stored_encoding_fails_loudly_rather_than_shifting_the_others(user, person):
    ReferencePhoto.objects.create(person=person, image="references/x/r.jpg", status=ReferenceStatus.DONE,
                                  encoding=b"\0" * 508)  # fmt: skip
    with pytest.raises(ValueError, match="not 128 numbers"):
        Gallery.for_owner(user.pk)


# Every change of a gallery changes its version, and the next for_owner sees the change. Each change is
# prepare(user, person) -> act: what it needs is made first, then act() is the change itself.


def name_face(user, person):
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", status=PhotoStatus.DONE)
    face = Face.objects.create(photo=photo, top=0, left=0, bottom=50, right=50,
                               encoding=engine.encoding_to_bytes(vector(5)))  # fmt: skip
    return partial(curation.reference_from_face, face, person, b"a face")  # what name_face and name_group add


def encoded(user, person):
    """The reference job's end (store_faces): a queued reference gets its encoding."""
    reference = make_reference(person, 0, status=ReferenceStatus.QUEUED)
    found = engine.DetectedFace(box=engine.Box(top=0, right=10, bottom=10, left=0), encoding=vector(6))
    return partial(reference.store_faces, [found], width=10)


def chosen(user, person):
    reference = make_reference(person, 0, status=ReferenceStatus.QUEUED)
    ReferencePhoto.objects.filter(pk=reference.pk).update(
        status=ReferenceStatus.CHOOSE,
        faces=[{"index": 0, "box": {}, "width": 10, "encoding": engine.encoding_to_bytes(vector(7)).hex()}],
    )
    reference.refresh_from_db()
    return partial(curation.choose_reference_face, reference, 0)


def merged(user, person):
    other = Person.objects.create(owner=user, name="Ada L.")
    make_reference(other, 8)
    return partial(curation.merge_people, other, person)


def rejected(user, person):
    """'Not this person' on a face named as them drops the reference made from it."""
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", status=PhotoStatus.DONE)
    face = Face.objects.create(photo=photo, top=0, left=0, bottom=50, right=50, person=person, named_by_user=True,
                               encoding=engine.encoding_to_bytes(vector(9)))  # fmt: skip
    curation.reference_from_face(face, person, b"a face")
    return partial(curation.reject_match, face)


def bulk_created(user, person):
    new = ReferencePhoto(person=person, status=ReferenceStatus.DONE, encoding=engine.encoding_to_bytes(vector(11)))
    return partial(ReferencePhoto.objects.bulk_create, [new])


CHANGES = {
    "a face named (a reference made from a face)": name_face,
    "a reference encoded": encoded,
    "a face chosen in a group reference": chosen,
    "people merged": merged,
    "a match rejected": rejected,
    "a person deleted (curation, the API)": lambda user, person: partial(curation.delete_person, person),
    # Person.delete() cascades to the references: no delete() of theirs runs.
    "a person deleted (the model)": lambda user, person: Person.objects.get(pk=person.pk).delete,
    "people deleted in bulk (the admin)": lambda user, person: Person.objects.filter(owner=user).delete,
    "a reference deleted (curation)": lambda user, person: partial(curation.delete_reference, person.references.get()),
    "a reference deleted (the model, the admin)": lambda user, person: person.references.get().delete,
    "references deleted in bulk": lambda user, person: ReferencePhoto.objects.filter(person=person).delete,
    "a reference created": lambda user, person: partial(make_reference, person, 10),
    "references created in bulk": bulk_created,
    "encoded again (the admin's action: back to queued)": lambda user, person: partial(
        person.references.update, status=ReferenceStatus.QUEUED
    ),
    "a reference failed (the job's update)": lambda user, person: partial(
        ReferencePhoto.objects.filter(person=person).update, status=ReferenceStatus.FAILED, error="broken"
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("prepare", CHANGES.values(), ids=CHANGES.keys())
def test_every_change_of_a_gallery_changes_its_version_and_the_next_read_sees_it(user, person, prepare):
    change = prepare(user, person)
    cached = Gallery.for_owner(user.pk)
    version = GalleryVersion.current(user.pk)

    change()

    assert GalleryVersion.current(user.pk) != version
    now = Gallery.for_owner(user.pk)
    assert same(now, Gallery.load(user.pk))
    assert not same(now, cached), "the change must have changed the gallery for this test to mean anything"


@pytest.mark.django_db
def test_the_api_and_the_admin_change_it_too(user, person, api, staff_client):
    version = GalleryVersion.current(user.pk)
    reference = person.references.get()
    response = staff_client.post(
        "/admin/recognition/referencephoto/",
        {"action": "encode_selected", "_selected_action": [reference.pk]},
    )
    assert response.status_code == 302 and GalleryVersion.current(user.pk) != version

    version = GalleryVersion.current(user.pk)
    assert api.delete(f"/api/people/{person.pk}/").status_code == 204
    assert GalleryVersion.current(user.pk) != version


def set_error(user, person):
    person.references.update(error="Stored, not lost")


UNCHANGED = {
    "a rename": lambda user, person: curation.rename_person(person, "Ada Lovelace"),
    "hidden": lambda user, person: curation.set_hidden(person, True),
    "a new person": lambda user, person: curation.create_person(user, "Bob"),
    "a reference stored, not encoded yet": lambda user, person: make_reference(person, 0, ReferenceStatus.QUEUED),
    "a reference's error": set_error,
    "a reference's thumbnail": lambda user, person: person.references.update(thumbnail="references/x/t.jpg"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("change", UNCHANGED.values(), ids=UNCHANGED.keys())
def test_changes_the_gallery_does_not_hold_keep_it_cached(user, person, change):
    version = GalleryVersion.current(user.pk)
    change(user, person)
    assert GalleryVersion.current(user.pk) == version


@pytest.mark.django_db(transaction=True)
def test_a_version_seen_inside_a_rolled_back_transaction_never_comes_back(user, person):
    cached = Gallery.for_owner(user.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        make_reference(person, 2)
        assert len(Gallery.for_owner(user.pk)) == 2  # cached under a version that is then rolled back
        raise RuntimeError
    assert same(Gallery.for_owner(user.pk), cached)
    make_reference(person, 3)  # a new change: a new number, not the rolled-back one again
    assert len(Gallery.for_owner(user.pk)) == 2


# Memory.


@pytest.mark.django_db
def test_the_least_recently_used_gallery_goes_first(settings, django_user_model):
    owners = [django_user_model.objects.create_user(name) for name in "abc"]
    for owner in owners:
        make_reference(Person.objects.create(owner=owner, name="X"), owner.pk)
    settings.GALLERY_CACHE_MB = 2.5 * REFERENCE_BYTES / 2**20  # room for two galleries of one reference
    a, b, c = (owner.pk for owner in owners)
    Gallery.for_owner(a)
    Gallery.for_owner(b)
    Gallery.for_owner(a)  # a is now the most recent
    Gallery.for_owner(c)
    assert a in GALLERIES and c in GALLERIES and b not in GALLERIES
    assert GALLERIES.nbytes == 2 * REFERENCE_BYTES


@pytest.mark.django_db
def test_galleries_that_fill_the_cache_exactly_stay_in_it(settings, django_user_model):
    a, b = (django_user_model.objects.create_user(name).pk for name in "ab")
    for owner in (a, b):
        make_reference(Person.objects.create(owner_id=owner, name="X"), owner)
    settings.GALLERY_CACHE_MB = 2 * REFERENCE_BYTES / 2**20  # room for exactly two
    Gallery.for_owner(a)
    Gallery.for_owner(b)
    assert a in GALLERIES and b in GALLERIES
    GALLERIES.clear()
    settings.GALLERY_CACHE_MB = REFERENCE_BYTES / 2**20  # one gallery as large as the whole cache
    Gallery.for_owner(a)
    assert a in GALLERIES


@pytest.mark.django_db
def test_a_gallery_larger_than_the_cache_is_loaded_each_time(settings, user, person, django_assert_num_queries):
    settings.GALLERY_CACHE_MB = 0
    Gallery.for_owner(user.pk)
    assert user.pk not in GALLERIES and GALLERIES.nbytes == 0
    with django_assert_num_queries(2):  # the version, then the references
        assert len(Gallery.for_owner(user.pk)) == 1


# The worker parent loads a job's gallery before forking its work horse.


def photo_job(photo_id: int) -> Job:
    return Job.create("jobs.process_photo.process_photo", args=(photo_id,), connection=redis_connection())


@pytest.mark.django_db
def test_the_owner_of_a_photo_job_and_of_a_rematch_job(user, person, redis_server):
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", status=PhotoStatus.QUEUED)
    connection = redis_connection()
    assert galleries.owner_of(photo_job(photo.pk)) == user.pk
    rematch = Job.create("jobs.rematch.rematch_faces", args=(user.pk, None), connection=connection)
    assert galleries.owner_of(rematch) == user.pk
    other = Job.create("jobs.encode_reference.encode_reference", args=(1,), connection=connection)
    assert galleries.owner_of(other) is None
    assert galleries.owner_of(photo_job(photo.pk + 1000)) is None, "the photo was deleted"

    galleries.preload(photo_job(photo.pk))
    assert user.pk in GALLERIES


@pytest.mark.django_db
def test_preloading_never_fails_the_job(user, redis_server):
    galleries.preload(photo_job("not an id"))  # logged, not raised: the work horse loads the gallery itself


@pytest.mark.django_db(transaction=True)
def test_a_job_after_a_gallery_change_sees_it_through_a_real_worker(api, user, run_jobs):
    """Two jobs of one worker: the parent keeps the gallery between them, and the second must see a
    reference added in between by a path that queues no re-match."""
    photo_id = upload(api, "people/obama/congress_address_2009.jpg")
    run_jobs()
    photo = Photo.objects.get(pk=photo_id)
    assert photo.people_names() == [] and user.pk in GALLERIES, "the worker parent loaded the gallery"
    face = photo.faces.get()
    obama = Person.objects.create(owner=user, name="Obama")
    ReferencePhoto.objects.create(person=obama, image="references/x/o.jpg", status=ReferenceStatus.DONE,
                                  encoding=face.encoding)  # fmt: skip

    enqueue_photo(photo)
    run_jobs()
    assert Photo.objects.get(pk=photo_id).people_names() == ["Obama"]

    obama.references.update(status=ReferenceStatus.FAILED)  # gone from the gallery, no re-match either
    enqueue_photo(photo)
    run_jobs()
    assert Photo.objects.get(pk=photo_id).people_names() == []
