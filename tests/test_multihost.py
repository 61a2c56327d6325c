"""Many hosts for real: a web server and two workers, each run from a folder of its own (own VAR_DIR, own
MEDIA_ROOT, which must stay empty) and, where this runs as root, in a network namespace of its own
joined by a veth pair, where 127.0.0.1 is its own: they share nothing but the database, Redis and the S3
endpoint, which each reaches through a relay on its link's far end, as another machine would.

In `make test` the database is the test's SQLite file; CI's scale-out pass runs this again against
PostgreSQL and the system Redis (`-m multihost`, .ci/run)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token

from jobs.enqueue import QUEUE_NAMES
from recognition.models import Person, Photo, PhotoStatus, ReferenceStatus
from tests.conftest import Relay, face_file, free_port, wait_for, worker_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multihost]

PHOTOS = ["people/obama/congress_address_2009.jpg", "groups/obama_biden.jpg", "people/biden/senate.jpg",
          "nofaces/cat.png"]  # fmt: skip
SKIP = shutil.ignore_patterns(".venv", "var", ".git", "__pycache__", ".pytest_cache", ".ruff_cache",
                              "test-artifacts", "benchmarks", ".hypothesis", "tests")  # fmt: skip


def host_folder(root: Path, name: str) -> Path:
    """A copy of the project in a folder of its own, as on another machine."""
    folder = root / name
    shutil.copytree(settings.BASE_DIR, folder, ignore=SKIP)
    return folder


_subnets = itertools.count(os.getpid() % 200)


class Namespace:
    """A network namespace linked to this machine by a veth pair (10.213.N.1 here, 10.213.N.2 inside)."""

    def __init__(self) -> None:
        number = next(_subnets) % 250
        self.name = f"ph13-{os.getpid()}-{number}"
        self.link = f"ph{os.getpid() % 100000}x{number}"[:15]
        self.outside, self.inside = f"10.213.{number}.1", f"10.213.{number}.2"
        self.relays: list[Relay] = []

    def create(self) -> None:
        ip = ["ip"]
        commands = [
            [*ip, "netns", "add", self.name],
            [*ip, "link", "add", self.link, "type", "veth", "peer", "name", "inner0", "netns", self.name],
            [*ip, "addr", "add", f"{self.outside}/30", "dev", self.link],
            [*ip, "link", "set", self.link, "up"],
            [*self.run("ip"), "addr", "add", f"{self.inside}/30", "dev", "inner0"],
            [*self.run("ip"), "link", "set", "inner0", "up"],
            [*self.run("ip"), "link", "set", "lo", "up"],
        ]
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)

    def run(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def reach(self, url: str) -> str:
        """The URL of a service on this machine's 127.0.0.1, as seen from inside: through a relay."""
        parts = urllib.parse.urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
            return url
        relay = Relay(parts.port, parts.port, host=self.outside)
        relay.start()
        self.relays.append(relay)
        return url.replace(f"{parts.hostname}:{parts.port}", f"{self.outside}:{parts.port}", 1)

    def delete(self) -> None:
        for relay in self.relays:
            relay.stop()
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.link], capture_output=True)


def namespaces_work() -> bool:
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    probe = Namespace()
    try:
        probe.create()
        return True
    except (subprocess.CalledProcessError, OSError):
        return False
    finally:
        probe.delete()


@pytest.fixture
def namespace():
    """Make namespaces (None where this is not root: hosts are then folders on one network)."""
    made: list[Namespace] = []
    usable = namespaces_work()

    def make() -> Namespace | None:
        if not usable:
            return None
        space = Namespace()
        made.append(space)
        space.create()
        return space

    yield make
    for space in made:
        space.delete()


def host_environment(
    folder: Path, redis_url: str, s3_env: dict[str, str], space: Namespace | None = None
) -> dict[str, str]:
    """Only the shared database, Redis and S3 settings, and this host's own folders."""
    shared = worker_environment(redis_url)
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update({key: shared[key] for key in ("REDIS_URL", "DATABASE_URL", "SQLITE_PATH") if key in shared})
    env.update(s3_env)
    if space is not None:
        for key in ("REDIS_URL", "DATABASE_URL", "S3_ENDPOINT_URL"):
            if key in env:
                env[key] = space.reach(env[key])
    env.update(
        SECRET_KEY=settings.SECRET_KEY,
        SECURE_COOKIES="0",
        VAR_DIR=str(folder / "var"),
        MEDIA_ROOT=str(folder / "var" / "media"),
        PYTHONPATH=str(folder),
    )
    return env


class Hosts:
    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def start(self, folder: Path, env: dict[str, str], space: Namespace | None, *command: str) -> subprocess.Popen:
        command = [sys.executable, *command]
        if space is not None:
            command = space.run(*command)
        process = subprocess.Popen(command, cwd=folder, env=env, start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def hosts() -> Hosts:
    started = Hosts()
    yield started
    started.stop()


def request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=60) as got:
            return got.status, got.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except urllib.error.URLError:
        return 0, b""  # not listening yet


def multipart(relative: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{Path(relative).name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + face_file(relative).read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def session_cookie(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)  # the session is a database row: the web host reads it
    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"}


def stored_files(folder: Path) -> list[Path]:
    return [path for path in (folder / "var").rglob("*") if path.is_file() and "media" in path.parts]


def cannot_connect(space: Namespace, port: int) -> bool:
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
    return subprocess.run(space.run(sys.executable, "-c", probe), capture_output=True).returncode != 0


def test_web_and_two_workers_share_only_database_redis_and_s3(
    tmp_path, hosts, namespace, s3_media, redis_server, user, other_user
):
    web, worker_a, worker_b = (host_folder(tmp_path, name) for name in ("web", "worker-a", "worker-b"))
    spaces = {folder: namespace() for folder in (web, worker_a, worker_b)}
    address = spaces[web].inside if spaces[web] else "127.0.0.1"
    if spaces[web]:  # inside, this machine's services are out of reach but through the relays
        assert cannot_connect(spaces[web], urllib.parse.urlsplit(s3_media.env["S3_ENDPOINT_URL"]).port)
    port = free_port()
    env = host_environment(web, redis_server.url, s3_media.env, spaces[web])
    env["ALLOWED_HOSTS"] = address
    gunicorn = ["-m", "gunicorn", "photosite.wsgi", "--bind", f"{address}:{port}", "--workers", "2", "--threads", "2"]
    hosts.start(web, env, spaces[web], *gunicorn)
    for folder in (worker_a, worker_b):
        env = host_environment(folder, redis_server.url, s3_media.env, spaces[folder])
        hosts.start(folder, env, spaces[folder], "manage.py", "rqworker", *QUEUE_NAMES)
    base = f"http://{address}:{port}"
    wait_for(lambda: request(base + "/accounts/login/")[0] == 200, timeout=60, interval=0.3)

    token = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    status, answer = request(base + "/api/people/", json.dumps({"name": "Obama"}).encode(),
                             {**token, "Content-Type": "application/json"})  # fmt: skip
    assert status == 201, answer
    person_id = json.loads(answer)["id"]
    body, content_type = multipart("people/obama/portrait_2012.jpg")
    status, _ = request(f"{base}/api/people/{person_id}/references/", body, {**token, "Content-Type": content_type})
    assert status == 202
    wait_for(lambda: Person.objects.get(pk=person_id).references.get().status != ReferenceStatus.QUEUED, timeout=120)

    ids = []
    for relative in PHOTOS:
        body, content_type = multipart(relative)
        status, answer = request(base + "/api/photos/", body, {**token, "Content-Type": content_type})
        assert status == 202, answer
        ids.append(json.loads(answer)["id"])
    wait_for(lambda: Photo.objects.filter(pk__in=ids, status__in=["done", "failed"]).count() == len(ids), timeout=240)

    photos = list(Photo.objects.filter(pk__in=ids).prefetch_related("faces"))
    assert {photo.status for photo in photos} == {PhotoStatus.DONE}, [(p.pk, p.error) for p in photos]
    names = s3_media.names()
    for photo in photos:
        assert {photo.image.name, photo.thumbnail.name, photo.web_image.name} <= set(names)
        assert all(face.crop.name in names for face in photo.faces.all())
    assert Photo.objects.get(pk=ids[0]).people_names() == ["Obama"]
    assert sum(photo.faces.count() for photo in photos) >= 4
    for folder in (web, worker_a, worker_b):
        assert stored_files(folder) == [], f"{folder.name} stored media on its own disk"

    owner, intruder = session_cookie(user), session_cookie(other_user)
    photo = photos[1]
    reference = Person.objects.get(pk=person_id).references.get()
    media = {
        f"/media/photos/{photo.pk}/original": photo.image.name,
        f"/media/photos/{photo.pk}/web.jpg": photo.web_image.name,
        f"/media/photos/{photo.pk}/thumb.jpg": photo.thumbnail.name,
        f"/media/faces/{photo.faces.first().pk}.jpg": photo.faces.first().crop.name,
        f"/media/references/{reference.pk}.jpg": reference.thumbnail.name,
    }
    for path, name in media.items():
        assert request(base + path, headers=owner) == (200, s3_media.read(name)), path
        assert request(base + path, headers=intruder)[0] == 404, path
    assert request(f"{base}/photos/{photo.pk}/", headers=owner)[0] == 200
    assert request(f"{base}/photos/{photo.pk}/", headers=intruder)[0] == 404
