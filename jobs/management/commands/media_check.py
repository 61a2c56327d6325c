"""Find rows whose file is missing from media storage and files no row points to; --fix deletes orphans."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError
from tqdm import tqdm

from jobs.monitoring import record_media_check
from recognition.media_check import DEFAULT_MIN_AGE, check_media
from recognition.storage import StorageUnavailable


class Command(BaseCommand):
    help = (
        "Compare media rows with the files in media storage (disk or S3): list rows whose file is missing "
        "and files no row points to. A dry run by default; --fix deletes the orphan files (never a row). "
        "The figures also show on the admin's Queues page."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--fix", action="store_true", help="delete the orphan files")
        parser.add_argument(
            "--min-age",
            type=int,
            default=DEFAULT_MIN_AGE,
            help=f"files younger than this many seconds are never orphans (default {DEFAULT_MIN_AGE}: "
            "an upload stores its file just before its row)",
        )

    def handle(self, *args, fix: bool, min_age: int, **options) -> None:
        with tqdm(desc="Checking media", unit=" files", file=self.stderr._out, disable=options["verbosity"] < 1) as bar:
            try:
                report = check_media(fix=fix, min_age=min_age, progress=bar.update)
            except StorageUnavailable as exc:
                raise CommandError(f"Media storage is unavailable: {exc}") from exc
        for line in report.missing:
            self.stdout.write(f"missing  {line}")
        for name in report.orphans:
            self.stdout.write(f"{'deleted' if fix else 'orphan '}  {name}")
        self.stdout.write(
            f"{report.files} files ({report.bytes / 1e6:.1f} MB) for {report.referenced} names in the database: "
            f"{len(report.missing)} missing, {len(report.orphans)} orphans ({report.orphan_bytes / 1e6:.1f} MB)"
            + (f", {report.deleted} deleted" if fix else ", nothing deleted (dry run; --fix deletes orphans)")
            + (f"; {report.too_young} files younger than {min_age} s left alone" if report.too_young else "")
            + "."
        )
        try:
            record_media_check(report.as_dict())
        except RedisError:
            self.stderr.write("Redis is unavailable: the Queues page keeps the figures of the last run.")
