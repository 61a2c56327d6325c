"""Start everything on one machine: the embedded Redis, RQ workers and gunicorn. Ctrl-C stops them all."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

from django.conf import settings
from django.core.management.base import BaseCommand

from jobs import redis_server
from jobs.enqueue import QUEUE_NAMES

COOKIES_LOCAL = (
    "Cookies are not Secure-only: SECURE_COOKIES is unset and this serves plain HTTP on {host}, this machine "
    "only. Behind HTTPS set BEHIND_HTTPS_PROXY=1 (or SECURE_COOKIES=1) and they are."
)
COOKIES_SECURE = (
    "Cookies are Secure-only: browsers send them over HTTPS only, so sign in through your HTTPS proxy. "
    "(Plain HTTP on a network you trust: SECURE_COOKIES=0.)"
)


def local_http_cookies(env: Mapping[str, str], host: str) -> str:
    """The one case where cookies are not Secure-only unless asked: SECURE_COOKIES unset, plain HTTP on a
    loopback address, no HTTPS proxy or redirect configured. Returns the sentence that says so, else ""."""
    https = env_bool_in(env, "BEHIND_HTTPS_PROXY") or env_bool_in(env, "SECURE_SSL_REDIRECT")
    if env.get("SECURE_COOKIES", "").strip() or https:
        return ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    return COOKIES_LOCAL.format(host=host) if loopback else ""


def env_bool_in(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class Command(BaseCommand):
    help = "Run the embedded Redis (unless REDIS_URL is set), RQ workers and the web server together."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))

    def handle(self, *args, host: str, port: int, workers: int, web_workers: int, **options) -> None:
        self.children: list[subprocess.Popen] = []
        self.stopping = False
        # Explicit handlers: a shell may start us with SIGINT ignored, and then Ctrl-C would do nothing.
        signal.signal(signal.SIGINT, lambda *_: self.stop(0))
        signal.signal(signal.SIGTERM, lambda *_: self.stop(0))
        cookies = local_http_cookies(os.environ, host)
        if cookies:
            os.environ["SECURE_COOKIES"] = "0"  # for the processes started below
        self.start(host, port, workers, web_workers)
        self.stdout.write(self.style.SUCCESS(f"photosite is running at http://{host}:{port}/ (Ctrl-C stops it)"))
        self.stdout.write(cookies or COOKIES_SECURE)
        while all(child.poll() is None for child in self.children):
            time.sleep(0.5)
        self.stderr.write("A process exited; stopping the others.")
        self.stop(1)

    def start(self, host: str, port: int, workers: int, web_workers: int) -> None:
        if not settings.REDIS_URL:
            data_dir = settings.VAR_DIR / "redis"
            self.stdout.write(f"Embedded Redis on 127.0.0.1:{settings.EMBEDDED_REDIS_PORT}, data in {data_dir}")
            self.children.append(redis_server.start(settings.EMBEDDED_REDIS_PORT, data_dir, start_new_session=True))
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        for number in range(workers):
            name = f"{os.uname().nodename}.{os.getpid()}.{number}"
            worker = [*manage, "rqworker", *QUEUE_NAMES, "--with-scheduler", "--name", name]
            self.children.append(subprocess.Popen(worker, start_new_session=True))
        gunicorn = [
            sys.executable, "-m", "gunicorn", "photosite.wsgi",
            "--bind", f"{host}:{port}",
            "--workers", str(web_workers),
            "--threads", "4",  # uploads wait on disk, database and Redis, not on the CPU
            "--access-logfile", "-",
        ]  # fmt: skip
        self.children.append(subprocess.Popen(gunicorn, cwd=settings.BASE_DIR, start_new_session=True))

    def stop(self, code: int) -> None:
        """Stop the children one signal each, in order; they run in their own sessions so that Ctrl-C
        reaches only this process (a second signal would make an RQ worker kill its running job)."""
        if self.stopping:  # a second Ctrl-C: stop at once
            for child in self.children:
                child.kill()
            sys.exit(code)
        self.stopping = True
        self.stdout.write("Stopping: web server, workers (after their current job), then Redis.")
        for child in reversed(self.children):  # web first, then workers (they finish their job), Redis last
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=settings.JOB_TIMEOUT)
                except subprocess.TimeoutExpired:
                    child.kill()
        sys.exit(code)
