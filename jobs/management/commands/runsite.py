"""Start everything on one machine: the embedded Redis, RQ workers and gunicorn, and keep them running.

Ctrl-C, SIGTERM or SIGHUP stop them all; they also die with runsite if it is killed. A child that dies
on its own is restarted with backoff; one that keeps dying stops the site, saying why.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs import redis_server
from jobs.enqueue import QUEUE_NAMES
from jobs.supervisor import (
    AlreadyRunning,
    Child,
    ChildKeepsDying,
    PidFile,
    Supervisor,
    listening_on,
    port_in_use,
    stop_leftovers,
)


class Stop(Exception):
    pass


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
        pid_file = PidFile(settings.VAR_DIR / "runsite.pid")
        try:
            leftovers = pid_file.acquire()
        except AlreadyRunning as exc:
            raise CommandError(f"{exc}; stop it first (Ctrl-C in its terminal, or kill {exc.pid})") from None
        try:
            if leftovers and (count := stop_leftovers(leftovers)):
                self.stderr.write(
                    f"Stopped {count} process{'es' if count != 1 else ''} left running by a photosite that was killed."
                )
            self.run(pid_file, host, port, workers, web_workers)
        finally:
            pid_file.release()

    def run(self, pid_file: PidFile, host: str, port: int, workers: int, web_workers: int) -> None:
        cookies = local_http_cookies(os.environ, host)
        if cookies:
            os.environ["SECURE_COOKIES"] = "0"  # for the processes started below
        children = self.children(host, port, workers, web_workers)
        self.supervisor = Supervisor(children, record=lambda kids: pid_file.write([k.pid for k in kids if k.alive()]))
        self.signalled = False
        self.stop_requested = False
        # Explicit handlers: a shell may start us with SIGINT ignored, and then Ctrl-C would do nothing.
        # SIGHUP (the terminal closed) stops the site like SIGTERM, instead of leaving it half-dead.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        code = 0
        try:
            self.check_ports(host, port)
            for child in children:
                self.supervisor.start(child)
                if self.stop_requested:
                    raise Stop
            self.stdout.write(self.style.SUCCESS(f"photosite is running at http://{host}:{port}/ (Ctrl-C stops it)"))
            self.stdout.write(cookies or COOKIES_SECURE)
            while not self.stop_requested:
                self.supervisor.check()
                time.sleep(0.5)
        except Stop:
            pass
        except ChildKeepsDying as exc:
            self.stderr.write(f"{exc}: stopping the site.")
            code = 1
        except RuntimeError as exc:  # a child did not come up
            self.stderr.write(f"Could not start: {exc}")
            code = 1
        self.stdout.write("Stopping: web server, workers (after their current job), then Redis.")
        self.supervisor.stop()
        if code:
            sys.exit(code)

    def on_signal(self, signum, frame) -> None:
        if self.stop_requested:  # a second Ctrl-C: stop at once
            self.supervisor.kill()
            os._exit(1)
        self.stop_requested = True

    def check_ports(self, host: str, port: int) -> None:
        if not settings.REDIS_URL and port_in_use("127.0.0.1", settings.EMBEDDED_REDIS_PORT):
            raise RuntimeError(
                f"port {settings.EMBEDDED_REDIS_PORT} of the embedded Redis is in use by another process "
                "(set EMBEDDED_REDIS_PORT, or stop that process)"
            )
        if port_in_use(host, port):
            raise RuntimeError(f"{host}:{port} is in use by another process (set PORT, or stop that process)")

    def children(self, host: str, port: int, workers: int, web_workers: int) -> list[Child]:
        children = []
        if not settings.REDIS_URL:
            data_dir = settings.VAR_DIR / "redis"
            data_dir.mkdir(parents=True, exist_ok=True)
            self.stdout.write(f"Embedded Redis on 127.0.0.1:{settings.EMBEDDED_REDIS_PORT}, data in {data_dir}")
            redis_url = f"redis://127.0.0.1:{settings.EMBEDDED_REDIS_PORT}/0"
            children.append(
                Child(
                    "redis",
                    lambda: redis_server.command(settings.EMBEDDED_REDIS_PORT, data_dir),
                    ready=lambda process: redis_server.wait_until_ready(redis_url, process),
                )
            )
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        for number in range(workers):
            children.append(self.worker(manage, number))
        gunicorn = [
            sys.executable, "-m", "gunicorn", "photosite.wsgi",
            "--config", "python:photosite.gunicorn",
            "--bind", f"{host}:{port}",
            "--workers", str(web_workers),
            "--threads", "4",  # uploads wait on disk, database and Redis, not on the CPU
        ]  # fmt: skip
        children.append(
            Child("web server", lambda: gunicorn, ready=lambda p: self.wait_bound(p, host, port), cwd=settings.BASE_DIR)
        )
        return children

    def worker(self, manage: list[str], number: int) -> Child:
        child = Child(f"worker {number}", lambda: [], stop_timeout=settings.JOB_TIMEOUT + 10)

        def command() -> list[str]:
            # A new name on each start: the old one stays registered in Redis until its heartbeat expires.
            name = f"{os.uname().nodename}.{os.getpid()}.{number}" + (f".{child.starts}" if child.starts > 1 else "")
            return [*manage, "rqworker", *QUEUE_NAMES, "--with-scheduler", "--name", name]

        child.command = command
        return child

    def wait_bound(self, process: subprocess.Popen, host: str, port: int, timeout: float = 90.0) -> None:
        """Wait until gunicorn itself listens on the port (not something else there), and answers."""
        deadline = time.monotonic() + timeout
        while not (listening_on(process.pid, port) and answers_http(host, port)):
            if process.poll() is not None:
                raise RuntimeError(f"the web server exited with code {process.returncode}")
            if self.stop_requested:
                raise Stop
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not answer on port {port} within {timeout:.0f} s")
            time.sleep(0.1)


def answers_http(host: str, port: int) -> bool:
    """Any HTTP answer will do (a 404 or a 400 for the host name is an answer)."""
    address = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    connection = http.client.HTTPConnection(address, port, timeout=5)
    try:
        connection.request("GET", "/health/", headers={"Host": "localhost"})
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()
