"""The worker class: models loaded once in the parent; a real `manage.py rqworker` subprocess."""

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from rq.job import Job

from jobs.enqueue import UPLOADS, get_queue, photo_job_id, reference_job_id
from recognition.models import Photo, PhotoStatus
from tests.conftest import photos_finished, stored_photo, upload_of, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.scaleout]


def test_models_are_loaded_in_the_parent_not_per_job(start_worker):
    queue = get_queue(UPLOADS)
    jobs = [queue.enqueue("tests.helpers.report_process") for _ in range(3)]
    worker = start_worker("--burst")
    assert worker.wait(timeout=120) == 0
    results = [job.latest_result().return_value for job in jobs]
    horse_pids = {result["pid"] for result in results}
    assert len(horse_pids) == 1, "one forked work horse runs job after job (tests/test_horse.py)"
    loaded_by = {result["models_loaded_by"] for result in results}
    assert loaded_by == {worker.pid}, "every horse inherited the models the parent loaded"
    assert worker.pid not in horse_pids
    # The parent's objects were frozen for the fork (gc.freeze): a horse's collections leave their pages shared.
    assert all(result["frozen_objects"] > 100_000 for result in results)


def test_burst_worker_subprocess_processes_uploads(api, start_worker):
    ids = [
        api.post("/api/photos/", {"image": upload_of(name)}).json()["id"]
        for name in ("people/obama/congress_address_2009.jpg", "nofaces/cat.png", "people/hayes/photo_2.jpg")
    ]
    worker = start_worker("--burst")
    assert worker.wait(timeout=300) == 0
    wait_for(lambda: photos_finished(ids), timeout=10)
    statuses = dict(Photo.objects.filter(pk__in=ids).values_list("original_name", "status"))
    assert statuses == {
        "congress_address_2009.jpg": PhotoStatus.DONE,
        "cat.png": PhotoStatus.DONE,
        "photo_2.jpg": PhotoStatus.DONE,
    }
    assert Photo.objects.get(original_name="congress_address_2009.jpg").faces.count() == 1


def test_several_worker_processes_share_the_queue(api, start_worker):
    """Two workers (SCALEOUT_WORKERS in CI's scale-out pass) drain one queue; nothing is done twice."""
    names = ["people/obama/senate.jpg", "people/biden/senate.jpg", "people/clinton/senate.jpg",
             "people/harris/senate.jpg", "people/hayes/photo_2.jpg", "portraits/029701.jpg"]  # fmt: skip
    ids = [api.post("/api/photos/", {"image": upload_of(name)}).json()["id"] for name in names]
    workers = [start_worker("--burst") for _ in range(int(os.environ.get("SCALEOUT_WORKERS", "2")))]
    for worker in workers:
        assert worker.wait(timeout=300) == 0
    wait_for(lambda: photos_finished(ids), timeout=10)
    photos = Photo.objects.filter(pk__in=ids)
    assert {photo.status for photo in photos} == {PhotoStatus.DONE}
    assert all(photo.attempts == 1 and photo.faces.count() == 1 for photo in photos)


def test_uploads_go_before_gallery_changes_before_bulk_work(api, user, run_jobs):
    """Bulk reprocessing queued first, then a gallery change, then an upload: the worker takes them in the
    order high, default, low, so bulk work never starves an upload."""
    bulk = [stored_photo(user, "nofaces/cat.png", status=PhotoStatus.DONE).pk for _ in range(3)]
    call_command("reprocess", "--all", stdout=open(os.devnull, "w"))  # noqa: SIM115
    person = api.post("/api/people/", {"name": "Hayes"}, format="json").json()
    reference = api.post(f"/api/people/{person['id']}/references/", {"image": upload_of("people/hayes/photo_1.jpg")})
    upload = api.post("/api/photos/", {"image": upload_of("people/hayes/photo_2.jpg")}).json()["id"]

    run_jobs()  # 3 bulk, the upload, its alert, the reference, the re-match it queued, grouping runs
    connection = get_queue(UPLOADS).connection
    started = {job_id: Job.fetch(job_id, connection=connection).started_at for job_id in
               [photo_job_id(pk) for pk in [upload, *bulk]] + [reference_job_id(reference.json()["id"])]}  # fmt: skip
    order = sorted(started, key=started.get)
    assert order[0] == photo_job_id(upload)
    assert order[1] == reference_job_id(reference.json()["id"])
    assert set(order[2:]) == {photo_job_id(pk) for pk in bulk}


def test_the_parent_unfreezes_its_objects_after_each_fork(run_jobs):
    """gc.freeze() lasts only for the fork: the worker parent's own garbage stays collectable."""
    job = get_queue(UPLOADS).enqueue("tests.helpers.report_process")
    run_jobs()
    assert job.latest_result().return_value["frozen_objects"] > 0
    assert gc.get_freeze_count() == 0


AUTOGROUP = Path("/proc/self/autogroup")
YIELD = (
    "import django, os, pathlib; django.setup(); from jobs.worker import yield_cpu; yield_cpu(7); "
    "print(os.nice(0), (pathlib.Path('/proc/self/autogroup').read_text().split() or ['default'])[-1])"
)


def session_niceness() -> str:
    """This process's autogroup niceness; "default" in init's session, whose group the kernel does not show
    (a CI runner started without a session of its own reads an empty file)."""
    return (AUTOGROUP.read_text().split() or ["default"])[-1]


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="a kernel without autogroup scheduling")
@pytest.mark.parametrize("own_session", [True, False])
def test_a_worker_leading_its_session_gives_the_session_its_niceness(own_session):
    """runsite starts each worker in its own session: with autogroup scheduling the CPU is shared between
    sessions first, so the worker's niceness must be its session's too. A worker started from a shell
    (not leading its session) leaves the shell's session alone."""
    ours = session_niceness()
    result = subprocess.run(
        [sys.executable, "-c", YIELD], capture_output=True, text=True, check=True, start_new_session=own_session
    )
    niceness, group_niceness = result.stdout.split()
    assert niceness == "7"
    assert group_niceness == ("7" if own_session else ours)
    assert session_niceness() == ours


BUSY_KERNEL = """
import django, errno, pathlib
django.setup()
from jobs import worker
calls = []
class Busy(type(pathlib.Path())):
    def write_text(self, text):
        calls.append(text)
        if len(calls) < 3:
            raise BlockingIOError(errno.EAGAIN, "the kernel takes one autogroup change per 100 ms")
        return super().write_text(text)
worker.Path = Busy
worker.yield_cpu(6)
print(len(calls), pathlib.Path('/proc/self/autogroup').read_text().split()[-1])
"""


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="a kernel without autogroup scheduling")
def test_workers_started_together_take_turns_for_the_autogroup_niceness():
    """Without CAP_SYS_ADMIN the kernel answers EAGAIN to a second autogroup change within 100 ms."""
    result = subprocess.run(
        [sys.executable, "-c", BUSY_KERNEL], capture_output=True, text=True, check=True, start_new_session=True
    )
    assert result.stdout.split() == ["3", "6"]
