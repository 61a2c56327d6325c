"""The grouping jobs: new unknown faces into groups after photos are processed, or a full regrouping."""

from __future__ import annotations

from contextlib import contextmanager

from rq import get_current_job

from jobs.enqueue import GALLERY, get_queue
from recognition import grouping

LOCK_TIMEOUT = 3 * 3600


@contextmanager
def owner_lock(owner_id: int):
    """One grouping run per owner at a time, across every worker and the command."""
    connection = get_queue(GALLERY).connection
    with connection.lock(f"photosite:grouping:{owner_id}", timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_TIMEOUT):
        yield


def group_faces(owner_id: int) -> dict:
    """Incremental: only faces no run has seen; existing groups are grown, never rebuilt."""
    with owner_lock(owner_id):
        return grouping.group_new_faces(owner_id)


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
        return grouping.regroup_owner(owner_id, progress=progress)
