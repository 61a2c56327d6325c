"""`manage.py reprocess`: filters, --dry-run, --force, --rematch-only, --wait, user decisions kept."""

import os
import signal
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rq import Queue

from jobs.enqueue import BULK, UPLOADS, get_queue, photo_job_id
from recognition.models import Face, Person, Photo, PhotoStatus
from tests.conftest import photos_finished, stored_photo, upload_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def reprocess(*args: str) -> str:
    out = StringIO()
    call_command("reprocess", *args, stdout=out)
    return out.getvalue()


def queued_ids(queue: str = BULK) -> set[int]:
    return {int(job_id.removeprefix("photo-")) for job_id in get_queue(queue).get_job_ids()}


def add_face(photo: Photo, person: Person | None = None) -> Face:
    return Face.objects.create(photo=photo, top=1, right=2, bottom=3, left=0, encoding=bytes(512), person=person)


@pytest.fixture
def photos(user, other_user, redis_server) -> dict[str, Photo]:
    """Photos of two users in every state, some old, one with Obama found in it."""
    old = timezone.now() - timedelta(days=30)
    made = {
        "done": stored_photo(user, status=PhotoStatus.DONE, processed_at=old),
        "failed": stored_photo(user, status=PhotoStatus.FAILED, processed_at=old),
        "waiting": stored_photo(user, status=PhotoStatus.WAITING),
        "queued": stored_photo(user, status=PhotoStatus.QUEUED),
        "processing": stored_photo(user, status=PhotoStatus.PROCESSING),
        "old": stored_photo(user, status=PhotoStatus.DONE, processed_at=old),
        "other": stored_photo(other_user, status=PhotoStatus.FAILED, processed_at=old),
    }
    Photo.objects.filter(pk=made["old"].pk).update(created_at=old)
    add_face(made["done"], Person.objects.create(owner=user, name="Obama"))
    return made


def names(photos: dict[str, Photo], ids: set[int]) -> set[str]:
    return {name for name, photo in photos.items() if photo.pk in ids}


def test_a_choice_is_required(photos):
    with pytest.raises(CommandError, match="Choose photos"):
        reprocess()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--all"], {"done", "failed", "waiting", "old", "other"}),
        (["--status", "failed"], {"failed", "other"}),
        (["--missing"], {"waiting"}),
        (["--owner", "mallory"], {"other"}),
        (["--person", "obama"], {"done"}),
        (["--owner", "alice", "--status", "failed"], {"failed"}),
        (["--all", "--force"], {"done", "failed", "waiting", "queued", "processing", "old", "other"}),
    ],
)
def test_filters_choose_and_narrow(photos, args, expected):
    output = reprocess(*args)
    assert f"{len(expected)} photos queued on the low queue" in output
    assert names(photos, queued_ids()) == expected
    statuses = dict(Photo.objects.values_list("pk", "status"))
    assert all(statuses[photos[name].pk] == PhotoStatus.QUEUED for name in expected)


def test_since_and_ids(photos):
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    reprocess("--since", since, "--status", "done")
    assert names(photos, queued_ids()) == {"done"}
    get_queue(BULK).empty()
    reprocess("--ids", f"{photos['old'].pk},{photos['queued'].pk}")
    assert names(photos, queued_ids()) == {"old"}, "a queued photo is skipped without --force"


def test_bad_arguments_are_refused(photos):
    with pytest.raises(CommandError, match="not a date"):
        reprocess("--since", "yesterday")
    with pytest.raises(CommandError, match="No user named"):
        reprocess("--owner", "nobody")


def test_dry_run_counts_and_changes_nothing(photos):
    before = dict(Photo.objects.values_list("pk", "status"))
    assert "5 photos would be queued on the low queue" in reprocess("--all", "--dry-run")
    assert dict(Photo.objects.values_list("pk", "status")) == before
    assert get_queue(BULK).count == 0


def test_queue_option(photos):
    reprocess("--ids", str(photos["failed"].pk), "--queue", "high")
    assert queued_ids(UPLOADS) == {photos["failed"].pk}
    assert get_queue(BULK).count == 0


def test_reprocessing_keeps_what_users_decided(user, redis_server, run_jobs):
    obama = Person.objects.create(owner=user, name="Obama")
    barack = Person.objects.create(owner=user, name="Barack")
    from jobs.encode_reference import encode_reference

    encode_reference(obama.references.create(image=upload_of("people/obama/portrait_2012.jpg")).pk)
    named = stored_photo(user, "people/obama/congress_address_2009.jpg")
    rejected = stored_photo(user, "people/obama/senate.jpg")
    reprocess("--ids", f"{named.pk},{rejected.pk}")
    run_jobs()
    assert {f.person for f in Face.objects.all()} == {obama}
    # On the photo pages the user named one face by hand and said "not Obama" for the other.
    Face.objects.filter(photo=named).update(person=barack, named_by_user=True)
    old_rejected = rejected.faces.get()
    old_rejected.rejected_people.add(obama)
    Face.objects.filter(pk=old_rejected.pk).update(person=None, distance=None)
    old_ids = set(Face.objects.values_list("pk", flat=True))

    reprocess("--ids", f"{named.pk},{rejected.pk}")
    run_jobs()
    assert photos_finished([named.pk, rejected.pk])
    assert not old_ids & set(Face.objects.values_list("pk", flat=True)), "faces were detected again"
    assert named.faces.get().person == barack and named.faces.get().named_by_user
    new_rejected = rejected.faces.get()
    assert new_rejected.person is None and list(new_rejected.rejected_people.all()) == [obama]


def test_rematch_only_matches_stored_faces_without_detecting(user, redis_server, run_jobs):
    photo = stored_photo(user, "people/obama/congress_address_2009.jpg")
    failed = stored_photo(user, status=PhotoStatus.FAILED)
    reprocess("--ids", str(photo.pk))
    run_jobs()
    face = photo.faces.get()
    assert face.person is None
    obama = Person.objects.create(owner=user, name="Obama")
    from jobs.encode_reference import encode_reference

    encode_reference(obama.references.create(image=upload_of("people/obama/portrait_2012.jpg")).pk)
    get_queue("default").empty()  # the re-match that encoding queued: the command must do it alone

    output = reprocess("--all", "--rematch-only")
    assert "1 photos re-matched on the low queue" in output
    assert Photo.objects.get(pk=failed.pk).status == PhotoStatus.FAILED, "only processed photos are re-matched"
    run_jobs()
    assert Face.objects.get(pk=face.pk).person == obama, "the same face row, matched again"
    assert Photo.objects.get(pk=photo.pk).attempts == 1, "no detection ran"


def test_wait_follows_a_real_worker_to_the_end(user, start_worker):
    ids = [stored_photo(user, name).pk for name in ("nofaces/cat.png", "people/hayes/photo_2.jpg")]
    start_worker()
    output = reprocess("--ids", ",".join(map(str, ids)), "--wait")
    assert "All 2 photos finished: 2 done, 0 failed." in output
    wait_for(lambda: photos_finished(ids), timeout=5)
    output = reprocess("--ids", ",".join(map(str, ids)), "--rematch-only", "--wait")
    assert "Re-matched 2 photos." in output


def test_many_photos_go_in_batches(user, redis_server):
    photo = stored_photo(user, status=PhotoStatus.DONE)
    Photo.objects.bulk_create([Photo(owner=user, image=photo.image.name, status=PhotoStatus.DONE) for _ in range(2499)])
    assert "2500 photos queued" in reprocess("--all", "--batch-size", "1000")
    assert get_queue(BULK).count == 2500
    assert not Photo.objects.exclude(status=PhotoStatus.QUEUED).exists()
    job = get_queue(BULK).fetch_job(photo_job_id(photo.pk))
    assert job.meta == {"photo_id": photo.pk} and job.retries_left == 3


def test_redis_down_is_a_clear_error(photos, settings):
    dead = {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 5}
    settings.RQ_QUEUES = {name: dead for name in settings.RQ_QUEUES}
    with pytest.raises(CommandError, match="Redis is unavailable"):
        reprocess("--all")


def test_ctrl_c_stops_between_batches_and_says_how_many(user, redis_server, monkeypatch):
    """A real SIGINT to this process while the second batch goes out: that batch finishes, no other starts."""
    photo = stored_photo(user, status=PhotoStatus.DONE)
    Photo.objects.bulk_create([Photo(owner=user, image=photo.image.name, status=PhotoStatus.DONE) for _ in range(999)])
    pushed = Queue.enqueue_many
    batches = 0

    def enqueue_many_then_ctrl_c(self, *args, **kwargs):
        nonlocal batches
        jobs = pushed(self, *args, **kwargs)
        batches += 1
        if batches == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C
        return jobs

    monkeypatch.setattr(Queue, "enqueue_many", enqueue_many_then_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    output = reprocess("--all", "--batch-size", "100")
    assert "Interrupted: 200 of 1000 photos queued" in output
    assert get_queue(BULK).count == 200
    assert Photo.objects.filter(status=PhotoStatus.QUEUED).count() == 200, "no batch left half done"
    assert Photo.objects.filter(status=PhotoStatus.DONE).count() == 800
    assert signal.getsignal(signal.SIGINT) is before, "Ctrl-C works as usual again"
