"""The worker parent loads the gallery a job will match against before it forks a work horse.

The horse inherits the parent's recognition.matching.GALLERIES (copy-on-write pages it only reads), so
its first Gallery.for_owner costs one query for the version instead of reading every reference. The horse
then keeps its galleries from one job to the next (jobs/horse.py); one that finds a newer version, or
another owner's gallery, loads that itself.
"""

from __future__ import annotations

import logging

from rq.job import Job

from recognition.matching import GALLERIES
from recognition.models import Photo

log = logging.getLogger(__name__)


def owner_of(job: Job) -> int | None:
    """Whose gallery the job matches against: one query for a photo's owner; None for other jobs."""
    if job.func_name == "jobs.process_photo.process_photo":
        return Photo.objects.filter(pk=job.args[0]).values_list("owner_id", flat=True).first()
    if job.func_name == "jobs.rematch.rematch_faces":
        return job.args[0]
    return None


def preload(job: Job) -> None:
    """Load (or check) the job's gallery in this process. Never fails: the horse would load it itself."""
    try:
        owner_id = owner_of(job)
        if owner_id is not None:
            GALLERIES.get(owner_id)
    except Exception:
        log.warning("Could not load the gallery for job %s before forking", job.id, exc_info=True)
