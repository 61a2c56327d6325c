"""Fair share of the workers: one user's backlog costs another user a few photos' wait, not the backlog."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count

from jobs.enqueue import BULK, FAIR_SHARE_WAIT, UPLOADS, enqueue_photos, fair_share, get_queue
from recognition.models import Photo, PhotoStatus
from tests.conftest import FACES, photos_finished, stored_photo, upload_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def portraits(count: int) -> list[str]:
    return sorted(f"portraits/{path.name}" for path in (FACES / "portraits").glob("*.jpg"))[:count]


def test_a_users_backlog_waits_its_turn_in_the_database(api, user, redis_server, run_jobs):
    share = fair_share()
    bodies = [api.post("/api/photos/", {"image": upload_of(name)}).json() for name in portraits(share + 3)]
    assert [body["status"] for body in bodies] == ["queued"] * share + ["waiting"] * 3
    assert bodies[-1]["message"] == f"Stored, not lost: {FAIR_SHARE_WAIT.removeprefix('waiting: ')}."
    assert get_queue(UPLOADS).count == share
    run_jobs()  # each job's end queues the next waiting photo: all of them end done
    assert set(Photo.objects.values_list("status", flat=True)) == {PhotoStatus.DONE}


def test_another_users_upload_is_done_after_a_few_photos_not_after_the_backlog(
    api, other_api, user, other_user, redis_server, start_worker
):
    start_worker()
    third = get_user_model().objects.create_user("carol", "carol@example.com", "a third long password")
    bulk = [stored_photo(third, name).pk for name in portraits(210)[200:]]
    sum(enqueue_photos(bulk, queue=BULK))  # bulk reprocessing waits below everyone's uploads
    backlog = [api.post("/api/photos/", {"image": upload_of(name)}).status_code for name in portraits(200)]
    assert backlog == [202] * 200
    theirs = other_api.post("/api/photos/", {"image": upload_of("people/obama/senate.jpg")}).json()
    assert theirs["status"] == "queued"
    wait_for(lambda: photos_finished([theirs["id"]]), timeout=120)

    photo = Photo.objects.get(pk=theirs["id"])
    assert photo.status == PhotoStatus.DONE
    ahead = Photo.objects.filter(owner=user, processed_at__gt=photo.queued_at, processed_at__lt=photo.processed_at)
    assert ahead.count() <= fair_share() + 1, "at most the backlog's share went first"
    backlog_left = Photo.objects.filter(owner=user).exclude(status__in=["done", "failed"]).count()
    assert backlog_left > 100, "done long before the backlog"
    counts = dict(Photo.objects.filter(pk__in=bulk).values_list("status").annotate(n=Count("pk")))
    assert counts == {PhotoStatus.QUEUED: 10}, "no bulk job ran while uploads were queued"
