"""Queue again the photos whose job is gone (Redis flushed or restarted, a worker killed mid-job)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from jobs.reconcile import DEFAULT_GRACE, reconcile


class Command(BaseCommand):
    help = (
        "Find unfinished photos whose job is gone from Redis, or stuck in processing past the job timeout, "
        "and queue them again. Workers run this on a schedule too (RECONCILE_INTERVAL)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--grace",
            type=int,
            default=DEFAULT_GRACE,
            help=f"leave photos queued less than this many seconds ago alone (default {DEFAULT_GRACE})",
        )
        parser.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")

    def handle(self, *args, grace: int, dry_run: bool, **options) -> None:
        outcome = reconcile(grace=grace, dry_run=dry_run)
        prefix = "Dry run, nothing changed: " if dry_run else ""
        self.stdout.write(f"{prefix}{outcome}")
        for label, ids in (("queued", outcome.queued), ("left waiting", outcome.held), ("failed", outcome.failed)):
            if ids and options["verbosity"] > 1:
                self.stdout.write(f"  {label}: {', '.join(map(str, ids))}")
