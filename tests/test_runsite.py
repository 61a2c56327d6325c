"""`manage.py runsite`, what `make run` starts: embedded Redis, a worker, gunicorn; one Ctrl-C stops all."""

import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest
from django.conf import settings

from jobs.management.commands.runsite import local_http_cookies
from tests.conftest import free_port, wait_for


def csrf_cookie(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return next(c for c in response.headers.get_all("Set-Cookie") if c.startswith("csrftoken="))


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def site_environment(tmp_path, **extra: str) -> dict[str, str]:
    """What `make run` gives runsite: no SECURE_COOKIES (pytest sets it to 0 for the tests themselves)."""
    env = dict(os.environ, VAR_DIR=str(tmp_path), EMBEDDED_REDIS_PORT=str(free_port()), **extra)
    for name in ("REDIS_URL", "DATABASE_URL", "SECURE_COOKIES"):
        env.pop(name, None)
    return env


def test_runsite_starts_everything_and_ctrl_c_stops_it(tmp_path):
    port = free_port()
    env = site_environment(tmp_path, PORT=str(port))
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    process = subprocess.Popen([*manage, "runsite"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/accounts/login/"), timeout=60)
        children = psutil.Process(process.pid).children(recursive=True)
        commands = " ".join(" ".join(child.cmdline()) for child in children)
        assert "redis-server" in commands and "rqworker" in commands and "gunicorn" in commands
        assert (tmp_path / "redis").is_dir()
        # Plain HTTP on 127.0.0.1 with SECURE_COOKIES unset: the one case of cookies that are not Secure-only.
        assert "; Secure" not in csrf_cookie(f"http://127.0.0.1:{port}/accounts/login/")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    assert "Cookies are not Secure-only: SECURE_COOKIES is unset and this serves plain HTTP on 127.0.0.1" in (
        process.stdout.read()
    )


def test_behind_an_https_proxy_make_run_gives_secure_cookies(tmp_path):
    """The README's "behind HTTPS" reading is the one that happens: nothing turns Secure off there."""
    port = free_port()
    env = site_environment(tmp_path, PORT=str(port), WORKERS="0", BEHIND_HTTPS_PROXY="1")
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    process = subprocess.Popen([*manage, "runsite"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/accounts/login/"), timeout=60)
        assert "; Secure" in csrf_cookie(f"http://127.0.0.1:{port}/accounts/login/")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    assert "Cookies are Secure-only" in process.stdout.read()


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
