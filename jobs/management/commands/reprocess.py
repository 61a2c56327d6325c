"""Queue photos for processing again, chosen by filters, in batches with Redis pipelines."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from datetime import time as day_start

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from redis.exceptions import RedisError
from rq.job import Job, JobStatus
from tqdm import tqdm

from jobs.enqueue import BULK, QUEUE_NAMES, enqueue_photos, enqueue_rematch_many, get_queue
from recognition.models import Photo, PhotoStatus

SELECTORS = ("all", "status", "missing", "since", "owner", "person", "ids")


def date_argument(value: str) -> datetime:
    """YYYY-MM-DD or an ISO date and time, in TIME_ZONE unless it says otherwise."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise argparse.ArgumentTypeError(f"not a date: {value!r} (use YYYY-MM-DD)")
        moment = datetime.combine(day, day_start())
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def ids_argument(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of ids: {value!r} (use 1,2,3)") from None


class Command(BaseCommand):
    help = (
        "Queue photos for face detection and matching again (or, with --rematch-only, match their stored "
        "faces against the current gallery). Filters combine: each one narrows the choice."
    )

    def add_arguments(self, parser) -> None:
        choose = parser.add_argument_group("which photos (at least one; they combine)")
        choose.add_argument("--all", action="store_true", help="every photo")
        choose.add_argument("--status", choices=PhotoStatus.values, help="photos with this status")
        choose.add_argument("--missing", action="store_true", help="photos never processed")
        choose.add_argument("--since", type=date_argument, metavar="DATE", help="photos uploaded on or after DATE")
        choose.add_argument("--owner", metavar="USERNAME", help="photos of this user")
        choose.add_argument("--person", metavar="NAME", help="photos where a person of this name was found")
        choose.add_argument("--ids", type=ids_argument, metavar="1,2,3", help="these photos")
        parser.add_argument(
            "--rematch-only",
            action="store_true",
            help="match the stored faces of processed photos against the current gallery, without detecting again",
        )
        parser.add_argument("--queue", choices=QUEUE_NAMES, default=BULK, help=f"queue to use (default {BULK})")
        parser.add_argument("--force", action="store_true", help="queue photos already queued or processing too")
        parser.add_argument("--dry-run", action="store_true", help="print how many photos would be queued and stop")
        parser.add_argument("--wait", action="store_true", help="follow the jobs to the end with a progress bar")
        parser.add_argument("--batch-size", type=int, default=1000, help="photos per Redis pipeline (default 1000)")

    def handle(self, *args, **options) -> None:
        photos = self.choose(options)
        if options["rematch_only"]:
            # Only processed photos have stored faces; the re-match job looks at done photos only.
            photos = photos.filter(status=PhotoStatus.DONE)
        elif not options["force"]:
            photos = photos.exclude(status__in=[PhotoStatus.QUEUED, PhotoStatus.PROCESSING])
        # A list, not a cursor: the batches below update the very rows being chosen.
        rows = list(photos.order_by("pk").values_list("pk", "owner_id").distinct())
        what = "re-matched" if options["rematch_only"] else "queued"
        if options["dry_run"]:
            self.stdout.write(f"{len(rows)} photos would be {what} on the {options['queue']} queue.")
            return
        if not rows:
            self.stdout.write(f"No photos to be {what}.")
            return
        started, clock = timezone.now(), time.monotonic()
        if options["rematch_only"]:
            done, jobs = self.enqueue_rematches(rows, options["queue"], options["batch_size"])
        else:
            done, jobs = self.enqueue_photos([pk for pk, _ in rows], options["queue"], options["batch_size"]), []
        seconds = time.monotonic() - clock
        rate = f" ({done / seconds:,.0f} photos/s)" if seconds > 0 else ""
        if done < len(rows):
            self.stdout.write(
                self.style.WARNING(f"Interrupted: {done} of {len(rows)} photos {what}, in {seconds:.1f} s.")
            )
            return
        self.stdout.write(f"{done} photos {what} on the {options['queue']} queue in {seconds:.1f} s{rate}.")
        if options["wait"]:
            if options["rematch_only"]:
                self.follow_jobs(jobs, done)
            else:
                self.follow_photos([pk for pk, _ in rows], started)

    def choose(self, options: dict) -> QuerySet[Photo]:
        if not any(options[name] not in (None, False) for name in SELECTORS):
            raise CommandError("Choose photos: --all, or one or more of --status, --missing, --since, --owner, "
                               "--person, --ids.")  # fmt: skip
        photos = Photo.objects.all()
        if options["status"]:
            photos = photos.filter(status=options["status"])
        if options["missing"]:
            photos = photos.filter(processed_at__isnull=True)
        if options["since"]:
            photos = photos.filter(created_at__gte=options["since"])
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"No user named {options['owner']!r}.")
            photos = photos.filter(owner=owner)
        if options["person"]:
            photos = photos.filter(faces__person__name__iexact=options["person"])
        if options["ids"] is not None:
            photos = photos.filter(pk__in=options["ids"])
        return photos

    def enqueue_photos(self, ids: list[int], queue: str, batch_size: int) -> int:
        with tqdm(total=len(ids), desc="Queueing", unit="photo", file=sys.stderr, disable=None) as bar:
            return self.in_batches(enqueue_photos(ids, queue=queue, batch_size=batch_size), bar)

    def enqueue_rematches(self, rows: list[tuple[int, int]], queue: str, batch_size: int) -> tuple[int, list[Job]]:
        by_owner: dict[int, list[int]] = defaultdict(list)
        for pk, owner_id in rows:
            by_owner[owner_id].append(pk)
        batches = [
            (owner, pks[i : i + batch_size]) for owner, pks in by_owner.items() for i in range(0, len(pks), batch_size)
        ]
        jobs: list[Job] = []

        def pushed() -> Iterator[int]:
            # A handful of batches go in one pipeline; one job re-matches a batch of photos.
            for i in range(0, len(batches), 20):
                jobs.extend(enqueue_rematch_many(batches[i : i + 20], queue=queue))
                yield sum(len(pks) for _, pks in batches[i : i + 20])

        with tqdm(total=len(rows), desc="Queueing", unit="photo", file=sys.stderr, disable=None) as bar:
            return self.in_batches(pushed(), bar), jobs

    def in_batches(self, batches: Iterator[int], bar: tqdm) -> int:
        """Run the batches; Ctrl-C stops between two of them, so no batch is left half done."""
        interrupted = False

        def stop(signum, frame) -> None:
            nonlocal interrupted
            interrupted = True

        previous = signal.signal(signal.SIGINT, stop)
        done = 0
        try:
            for count in batches:
                done += count
                bar.update(count)
                if interrupted:
                    break
        except RedisError as exc:
            # The batch under way may be marked queued without its jobs: reconcile queues those later.
            raise CommandError(f"Redis is unavailable ({exc}); {done} photos were queued before it went.") from exc
        finally:
            signal.signal(signal.SIGINT, previous)
        return done

    def follow_photos(self, ids: list[int], since: datetime) -> None:
        """A second bar until every queued photo is done or failed; Ctrl-C stops following, not the work."""
        with tqdm(total=len(ids), desc="Processing", unit="photo", file=sys.stderr, disable=None) as bar:
            done = failed = 0
            try:
                while done + failed < len(ids):
                    time.sleep(1)
                    done, failed = finished_counts(ids, since)
                    bar.set_postfix(done=done, failed=failed, refresh=False)
                    bar.update(done + failed - bar.n)
            except KeyboardInterrupt:
                self.stdout.write(f"Stopped following; the jobs go on. {done} done, {failed} failed so far.")
                return
        self.stdout.write(f"All {len(ids)} photos finished: {done} done, {failed} failed.")

    def follow_jobs(self, jobs: list[Job], photos: int) -> None:
        connection = get_queue(BULK).connection
        sizes = {job.id: job.meta.get("photos", 0) for job in jobs}
        with tqdm(total=photos, desc="Re-matching", unit="photo", file=sys.stderr, disable=None) as bar:
            try:
                pending = set(sizes)
                while pending:
                    time.sleep(1)
                    ids = sorted(pending)
                    for job_id, job in zip(ids, Job.fetch_many(ids, connection=connection), strict=True):
                        if job is None or job.get_status(refresh=False) in (JobStatus.FINISHED, JobStatus.FAILED):
                            pending.discard(job_id)
                            bar.update(sizes[job_id])
            except KeyboardInterrupt:
                self.stdout.write("Stopped following; the jobs go on.")
                return
        self.stdout.write(f"Re-matched {photos} photos.")


def finished_counts(ids: list[int], since: datetime, chunk: int = 2000) -> tuple[int, int]:
    """How many of these photos ended done, and failed, since the given moment."""
    done = failed = 0
    for start in range(0, len(ids), chunk):
        ended = Photo.objects.filter(pk__in=ids[start : start + chunk], processed_at__gte=since)
        done += ended.filter(status=PhotoStatus.DONE).count()
        failed += ended.filter(status=PhotoStatus.FAILED).count()
    return done, failed
