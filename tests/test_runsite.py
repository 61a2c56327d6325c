"""`manage.py runsite`, what `make run` starts: embedded Redis, a worker, gunicorn, supervised.

Each test runs the real stack on free ports with a var/ of its own. "Every process of the stack" is
the whole process tree under runsite, walked with psutil and recorded before anything is killed: the
children run in sessions of their own, so killing a process group would leave them alive.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from jobs import redis_server
from jobs.management.commands.runsite import local_http_cookies
from jobs.supervisor import port_in_use
from tests.conftest import face_file, free_port, wait_for
from tests.test_faults import portraits

pytestmark = pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="runs the embedded Redis")

MANAGE = [sys.executable, str(settings.BASE_DIR / "manage.py")]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Stack:
    """A runsite of its own: free ports, its own var/ (database, Redis data, pid file), output in a file."""

    def __init__(self, var: Path, **env: str) -> None:
        self.var = var
        self.port, self.redis_port = free_port(), free_port()
        self.env = dict(os.environ, VAR_DIR=str(var), PORT=str(self.port), EMBEDDED_REDIS_PORT=str(self.redis_port))
        self.env.pop("REDIS_URL", None)
        self.env.pop("DATABASE_URL", None)
        self.env.pop("SQLITE_PATH", None)
        self.env.pop("MEDIA_ROOT", None)
        self.env.update(env)
        self.log = var / "runsite.log"
        self.process: subprocess.Popen | None = None
        subprocess.run([*MANAGE, "migrate", "--noinput", "-v", "0"], env=self.env, check=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> str:
        return subprocess.run([*MANAGE, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def start(self) -> subprocess.Popen:
        before = len(self.output())
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([*MANAGE, "runsite"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        started = lambda: "photosite is running at" in self.output()[before:]  # noqa: E731
        wait_for(lambda: started() or self.process.poll() is not None, timeout=90)
        assert self.process.poll() is None, self.output()
        return self.process

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def tree(self) -> list[psutil.Process]:
        """runsite and every process under it."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def gone(self, processes: list[psutil.Process]) -> bool:
        return not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    def ports_free(self) -> bool:
        return not port_in_use("127.0.0.1", self.port) and not port_in_use("127.0.0.1", self.redis_port)

    def kill_everything(self) -> None:
        """A power cut: SIGKILL every process of the stack at once (recorded first, so none escapes)."""
        processes = self.tree()
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):  # one that just ended, say the horse killed before
                process.kill()
        self.process.wait()
        psutil.wait_procs(processes, timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            processes = self.tree()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for process in processes:
                    process.kill()
            psutil.wait_procs(processes, timeout=10)


@pytest.fixture
def stack(tmp_path):
    stacks: list[Stack] = []

    def make(**env: str) -> Stack:
        stacks.append(Stack(tmp_path, **env))
        return stacks[-1]

    yield make
    for made in stacks:
        made.stop()


def command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie not yet reaped
        return ""


def commands(processes: list[psutil.Process]) -> str:
    return " ".join(command(p) for p in processes)


def test_sighup_sigkill_and_ctrl_c_leave_nothing_behind_and_a_second_start_is_refused(stack):
    site = stack()
    site.start()
    assert all(name in commands(site.tree()) for name in ("redis-server", "rqworker", "gunicorn"))
    assert (site.var / "redis").is_dir()
    assert (site.var / "runsite.pid").read_text().split()[0] == str(site.process.pid)
    second = subprocess.run([*MANAGE, "runsite"], env=site.env, capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert f"already running (pid {site.process.pid})" in second.stderr

    # The terminal closes: SIGHUP.
    processes = site.tree()
    site.process.send_signal(signal.SIGHUP)
    wait_for(lambda: site.gone(processes) and site.ports_free(), timeout=15)

    # The OOM killer or `kill -9`: only runsite is killed, its children follow it.
    site.start()
    processes = site.tree()
    assert len(processes) >= 4
    site.process.kill()
    wait_for(lambda: site.gone(processes) and site.ports_free(), timeout=15)

    # And it starts again, stopping what a killed runsite left behind (here, a process its pid file names).
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    started = psutil.Process(leftover.pid).create_time()
    (site.var / "runsite.pid").write_text(f"{processes[0].pid}\n{leftover.pid} {started}\n")
    site.start()
    assert answers(f"{site.url}/accounts/login/")
    assert "Stopped 1 process left running by a photosite that was killed." in site.output()
    assert leftover.wait(timeout=5) is not None

    # Ctrl-C: a clean stop, in order, and the pid file goes.
    processes = site.tree()
    site.process.send_signal(signal.SIGINT)
    assert site.process.wait(timeout=60) == 0
    assert site.gone(processes) and site.ports_free()
    assert not (site.var / "runsite.pid").exists()


def test_a_child_that_dies_is_restarted(stack):
    site = stack()
    site.start()
    by_role = {role: p for p in site.tree()[1:] for role in ("redis-server", "rqworker", "gunicorn")
               if role in command(p) and p.ppid() == site.process.pid}  # fmt: skip
    for role in ("rqworker", "redis-server"):
        by_role[role].kill()  # as the out-of-memory killer would
        wait_for(lambda role=role: f"(pid {by_role[role].pid}) killed by signal 9; restarting" in site.output())

        def back(role=role) -> bool:
            kids = [p for p in psutil.Process(site.process.pid).children() if role in command(p)]
            return bool(kids) and kids[0].pid != by_role[role].pid

        wait_for(back, timeout=60)
    wait_for(lambda: site.output().count("Restarting") == 2, timeout=30)
    assert site.process.poll() is None, "the site stayed up"
    assert answers(f"{site.url}/accounts/login/")


def test_a_leftover_redis_on_the_port_is_not_taken_for_ours(stack):
    site = stack()
    command = [redis_server.binary(), "--port", str(site.redis_port), "--save", "", "--appendonly", "no"]
    squatter = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_in_use("127.0.0.1", site.redis_port), timeout=20)
        result = subprocess.run([*MANAGE, "runsite"], env=site.env, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0
        assert re.search(rf"port {site.redis_port} of the embedded Redis is in use", result.stderr)
        assert "photosite is running" not in result.stdout
    finally:
        squatter.kill()
        squatter.wait()


def post_photo(site: Stack, token: str, name: str, data: bytes) -> int:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Authorization": f"Token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    request = urllib.request.Request(f"{site.url}/api/photos/", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202
        return json.loads(response.read())["id"]


def get_json(site: Stack, token: str, path: str) -> dict:
    request = urllib.request.Request(f"{site.url}{path}", headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def kill_a_work_horse(site: Stack) -> bool:
    """SIGKILL the forked process running a job, if one runs (RQ gives it a process group of its own)."""
    for process in site.tree():
        if "rqworker" in command(process):
            for child in process.children():
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    if os.getpgid(child.pid) == child.pid:
                        child.kill()  # as the out-of-memory killer would
                        return True
    return False


def slow_group_photo() -> SimpleUploadedFile:
    """The group photo at twice its size: with detection at full size, long enough to be mid-job."""
    with Image.open(face_file("groups/situation_room_2011.jpg")) as image:
        big = image.resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC)
    data = io.BytesIO()
    big.save(data, format="JPEG", quality=90)
    return SimpleUploadedFile("situation_room_x2.jpg", data.getvalue(), content_type="image/jpeg")


def test_after_a_power_cut_every_photo_is_done_within_two_minutes_and_none_twice(stack):
    # Detection at full size: photos take long enough that one is mid-job when the power goes.
    site = stack(FACES_DETECT_MAX_SIDE="3000")
    make_token = (
        "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
        "print(Token.objects.create(user=User.objects.create_user('alice', password='a long password')).key)"
    )
    token = site.manage("shell", "-v", "0", "-c", make_token).strip().splitlines()[-1]
    site.start()
    group = slow_group_photo()
    ids = [post_photo(site, token, "group.jpg", group.read())]
    ids += [post_photo(site, token, Path(name).name, face_file(name).read_bytes()) for name in portraits(8)]
    wait_for(lambda: get_json(site, token, f"/api/photos/{ids[0]}/")["status"] == "processing", timeout=120)
    wait_for(lambda: kill_a_work_horse(site), timeout=60, interval=0.05)
    site.kill_everything()  # and then the power goes

    site.start()
    restarted = time.monotonic()

    def finished() -> bool:
        return all(get_json(site, token, f"/api/photos/{pk}/")["status"] in ("done", "failed") for pk in ids)

    wait_for(finished, timeout=120, interval=1)
    assert time.monotonic() - restarted < 120
    photos = [get_json(site, token, f"/api/photos/{pk}/") for pk in ids]
    assert [photo["status"] for photo in photos] == ["done"] * len(ids), photos
    assert all(len(photo["faces"]) == 1 for photo in photos[1:])
    boxes = [face["box"] for face in photos[0]["faces"]]
    assert len(boxes) >= 8 and len({tuple(box.values()) for box in boxes}) == len(boxes), "no face stored twice"
    log = site.output()
    assert [log.count(f"Job OK (photo-{pk})") for pk in ids] == [1] * len(ids), "each photo finished once"


# Secure cookies: the safe reading is the one that happens.


def csrf_cookie(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return next(c for c in response.headers.get_all("Set-Cookie") if c.startswith("csrftoken="))


def as_make_run_starts_it(site: Stack) -> Stack:
    """`make run` passes no SECURE_COOKIES (pytest sets it to 0 for the tests themselves)."""
    site.env.pop("SECURE_COOKIES", None)
    site.start()
    return site


def test_make_run_on_local_plain_http_says_its_cookies_are_not_secure_only(stack):
    site = as_make_run_starts_it(stack(WORKERS="0"))
    assert "; Secure" not in csrf_cookie(f"{site.url}/accounts/login/")
    assert "Cookies are not Secure-only: SECURE_COOKIES is unset and this serves plain HTTP on 127.0.0.1" in (
        site.output()
    )


def test_behind_an_https_proxy_make_run_gives_secure_cookies(stack):
    """The README's "behind HTTPS" reading is the one that happens: nothing turns Secure off there."""
    site = as_make_run_starts_it(stack(WORKERS="0", BEHIND_HTTPS_PROXY="1"))
    assert "; Secure" in csrf_cookie(f"{site.url}/accounts/login/")
    assert "Cookies are Secure-only" in site.output()


@pytest.mark.parametrize(
    ("env", "host", "local"),
    [({}, "127.0.0.1", True), ({}, "localhost", True), ({}, "::1", True), ({}, "0.0.0.0", False),
     ({}, "photos.example.com", False), ({"SECURE_COOKIES": "1"}, "127.0.0.1", False),
     ({"SECURE_COOKIES": "0"}, "0.0.0.0", False), ({"BEHIND_HTTPS_PROXY": "1"}, "127.0.0.1", False),
     ({"SECURE_SSL_REDIRECT": "true"}, "127.0.0.1", False)],
)  # fmt: skip
def test_cookies_are_secure_but_for_local_plain_http(env, host, local):
    assert bool(local_http_cookies(env, host)) is local


def test_the_makefile_does_not_turn_secure_cookies_off():
    commands = subprocess.run(
        ["make", "-n", "run"], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True
    ).stdout
    assert "manage.py runsite" in commands
    assert "SECURE_COOKIES" not in commands
