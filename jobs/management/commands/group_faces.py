"""Group unknown faces into people to name: the new ones (as after each upload), or all of them again."""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError
from rq.job import JobStatus
from tqdm import tqdm

from jobs.enqueue import enqueue_regrouping
from jobs.group_faces import owner_lock
from recognition import grouping
from recognition.models import Face


class Command(BaseCommand):
    help = (
        "Group the faces that match nobody. Without --full, only faces no run has seen yet (what the workers "
        "do after photos are processed); with --full, regroup every unknown face (user decisions are kept)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--owner", action="append", metavar="USERNAME", help="this user only (repeatable)")
        parser.add_argument("--full", action="store_true", help="regroup every unknown face from scratch")
        parser.add_argument(
            "--enqueue", action="store_true", help="with --full: run it as a job on the low queue, not here"
        )
        parser.add_argument("--wait", action="store_true", help="with --enqueue: follow the jobs' progress")

    def handle(self, *args, owner, full: bool, enqueue: bool, wait: bool, **options) -> None:
        owners = self.owners(owner)
        if enqueue:
            if not full:
                raise CommandError("--enqueue goes with --full (new faces are grouped by the workers already)")
            self.enqueue(owners, wait)
            return
        for user_id, username in owners:
            try:
                with owner_lock(user_id):
                    result = self.regroup(user_id, username) if full else grouping.group_new_faces(user_id)
            except RedisError as exc:
                raise CommandError(f"Redis is needed for the per-user lock: {exc}") from exc
            self.stdout.write(f"{username}: {self.describe(result)}")

    def owners(self, usernames: list[str] | None) -> list[tuple[int, str]]:
        users = get_user_model().objects.order_by("pk")
        if usernames:
            users = users.filter(username__in=usernames)
            missing = set(usernames) - set(users.values_list("username", flat=True))
            if missing:
                raise CommandError(f"no such user: {', '.join(sorted(missing))}")
        else:
            users = users.filter(pk__in=Face.objects.values("photo__owner_id"))
        return list(users.values_list("pk", "username"))

    def regroup(self, user_id: int, username: str) -> dict:
        with tqdm(total=100, desc=f"regrouping {username}", unit="%", file=self.stderr, disable=None) as bar:

            def progress(done: float) -> None:
                bar.update(round(done * 100) - bar.n)

            return grouping.regroup_owner(user_id, progress=progress)

    def enqueue(self, owners: list[tuple[int, str]], wait: bool) -> None:
        jobs = [enqueue_regrouping(user_id) for user_id, _ in owners]
        self.stdout.write(f"Queued {len(jobs)} regrouping job{'' if len(jobs) == 1 else 's'} on the low queue.")
        if not wait or not jobs:
            return
        with tqdm(total=100 * len(jobs), desc="regrouping", unit="%", file=self.stderr, disable=None) as bar:
            while True:
                for job in jobs:
                    job.refresh()
                done = sum(100 if job.get_status() == JobStatus.FINISHED else 100 * job.meta.get("progress", 0)
                           for job in jobs)  # fmt: skip
                bar.update(round(done) - bar.n)
                if all(job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED) for job in jobs):
                    break
                time.sleep(1)
        failed = [job.id for job in jobs if job.get_status() != JobStatus.FINISHED]
        if failed:
            raise CommandError(f"failed: {', '.join(failed)} (see the Queues page)")
        for job in jobs:
            self.stdout.write(self.describe(job.return_value()))

    @staticmethod
    def describe(result: dict) -> str:
        return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in result.items() if key != "owner") or (
            "nothing new"
        )
