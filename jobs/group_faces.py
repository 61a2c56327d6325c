"""The grouping jobs: new unknown faces into groups after photos are processed, or a full regrouping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.conf import settings
from redis.exceptions import LockError
from rq import get_current_job

from jobs.enqueue import GALLERY, enqueue_grouping, get_queue
from recognition import grouping

LOCK_TIMEOUT = 3 * 3600  # a lock outlives no crashed run by more than this


class Busy(Exception):
    """Another grouping run of this owner held the lock for longer than we could wait."""


@contextmanager
def owner_lock(owner_id: int, wait: float = LOCK_TIMEOUT) -> Iterator[None]:
    """One grouping run per owner at a time, across every worker and the command."""
    lock = get_queue(GALLERY).connection.lock(f"photosite:grouping:{owner_id}", timeout=LOCK_TIMEOUT)
    if not lock.acquire(blocking_timeout=wait):
        raise Busy(f"grouping of user {owner_id} is running elsewhere")
    try:
        yield
    finally:
        with suppress(LockError):  # expired meanwhile: nothing left to release
            lock.release()


def group_faces(owner_id: int) -> dict:
    """Incremental: only faces no run has seen; existing groups are grown, never rebuilt."""
    try:
        # Waits out another run within the job's time; a long regrouping picks these faces up itself.
        with owner_lock(owner_id, wait=max(1, settings.JOB_TIMEOUT - 60)):
            return grouping.group_new_faces(owner_id)
    except Busy:
        return {"owner": owner_id, "skipped": "a regrouping of this user is running; it queues a run when done"}


def regroup_faces(owner_id: int) -> dict:
    """Full: every unknown face of the owner, clustered again (user decisions kept); progress in job.meta."""
    job = get_current_job()
    saved = [0.0]

    def progress(done: float) -> None:
        if job is not None and (done - saved[0] >= 0.01 or done >= 1.0):
            saved[0] = done
            job.meta["progress"] = round(done, 3)
            job.save_meta()

    with owner_lock(owner_id):
        result = grouping.regroup_owner(owner_id, progress=progress)
    enqueue_grouping(owner_id)  # faces that arrived while it ran
    return result
