"""`manage.py runsite`, what `make run` starts: embedded Redis, a worker, gunicorn; one Ctrl-C stops all."""

import os
import signal
import subprocess
import sys
import urllib.request

import psutil
from django.conf import settings

from tests.conftest import free_port, wait_for


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_runsite_starts_everything_and_ctrl_c_stops_it(tmp_path):
    port, redis_port = free_port(), free_port()
    env = dict(os.environ, VAR_DIR=str(tmp_path), PORT=str(port), EMBEDDED_REDIS_PORT=str(redis_port))
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    process = subprocess.Popen([*manage, "runsite"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/accounts/login/"), timeout=60)
        children = psutil.Process(process.pid).children(recursive=True)
        commands = " ".join(" ".join(child.cmdline()) for child in children)
        assert "redis-server" in commands and "rqworker" in commands and "gunicorn" in commands
        assert (tmp_path / "redis").is_dir()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
