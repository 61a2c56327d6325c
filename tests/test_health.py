"""GET /health/: no auth, 200 when healthy, 503 when the database or Redis is down or jobs wait for no worker."""

import time

import pytest
from rq import Worker

from jobs.enqueue import UPLOADS, get_queue
from jobs.monitoring import workers
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_server(redis_server):
    """The session's Redis, running again after the test whatever the test did to it."""
    yield redis_server
    if redis_server.process is None:
        redis_server.start()


def test_ok_with_a_worker_then_redis_killed_then_back(client, redis_server, start_worker):
    start_worker()
    wait_for(lambda: len(workers()) == 1, timeout=60)
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "database": True, "redis": True, "workers": 1, "oldest_queued_seconds": None, "problems": [],
    }  # fmt: skip
    assert response["Cache-Control"].startswith("max-age=0")

    redis_server.stop()
    killed = time.monotonic()
    wait_for(lambda: client.get("/health/").status_code == 503, timeout=5, interval=0.1)
    assert time.monotonic() - killed < 5
    body = client.get("/health/").json()
    assert body["status"] == "down" and body["redis"] is False and body["database"] is True
    assert body["problems"] == ["redis: unreachable"]

    redis_server.start()
    wait_for(lambda: client.get("/health/").status_code == 200, timeout=30, interval=0.2)
    assert client.get("/health/").json()["status"] == "ok"


def test_jobs_waiting_with_no_worker_is_down(client, redis_server):
    body = client.get("/health/").json()
    assert body["status"] == "degraded" and body["workers"] == 0, "nothing waits yet: degraded, not down"
    assert client.get("/health/").status_code == 200
    get_queue(UPLOADS).enqueue("tests.helpers.report_process")
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down" and body["oldest_queued_seconds"] >= 0
    assert body["problems"] == ["workers: none has beaten its heartbeat for 90 s while jobs wait"]


def test_a_stale_worker_does_not_count(client, redis_server):
    ghost = Worker([get_queue(UPLOADS)], connection=redis_server.client(), name="ghost")
    ghost.register_birth()
    redis_server.client().hset(ghost.key, "last_heartbeat", "2020-01-01T00:00:00.000000Z")
    body = client.get("/health/").json()
    assert body["workers"] == 0


def test_the_database_down_is_503(client, redis_server, monkeypatch):
    from jobs import health

    monkeypatch.setattr(health, "_database_answers", lambda: False)  # a unit check of the verdict only
    response = client.get("/health/")
    assert response.status_code == 503 and response.json()["problems"][0] == "database: unreachable"


def test_cheap_one_database_query_whatever_the_workers(client, redis_server, django_assert_num_queries):
    for number in range(5):
        ghost = Worker([get_queue(UPLOADS)], connection=redis_server.client(), name=f"w{number}")
        ghost.register_birth()
    with django_assert_num_queries(1):
        assert client.get("/health/").json()["workers"] == 5
