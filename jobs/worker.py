"""The RQ worker class: loads the face models once, in the parent, before any work horse is forked."""

from __future__ import annotations

from django.db import connections
from rq import Worker

from recognition import engine


class FaceWorker(Worker):
    """Forks a work horse per job as RQ does; each horse shares the parent's loaded dlib models."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        engine.load_models()

    def fork_work_horse(self, job, queue) -> None:
        # A forked child must not share the parent's database socket.
        connections.close_all()
        super().fork_work_horse(job, queue)
