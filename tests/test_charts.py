"""The Queues page's charts: server-side SVG from the per-minute series, with a day of data, in a real browser."""

from __future__ import annotations

import math
import re
import time

import pytest

from jobs import charts, stats
from tests.test_browser import ARTIFACTS, browser, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def day_of_series(redis_server) -> float:
    """24 hours of minutes as the jobs write them: a busy afternoon, a backlog at night, a few failures."""
    now = time.time()
    last = int(now // 60)
    redis = redis_server.client()
    with redis.pipeline(transaction=False) as pipeline:
        for age in range(24 * 60):
            minute = last - age
            busy = 0.5 + 0.5 * math.sin(age / 120)
            fields = {
                "done": round(20 * busy),
                "d:high": round(200 * (1 - busy)),
                "d:default": 3,
                "d:low": 500 if age > 600 else 0,
                f"w:high:{stats.bucket(30 * (1 - busy), stats.WAIT_BUCKETS)}": 5,
                f"w:low:{stats.bucket(600, stats.WAIT_BUCKETS)}": 2,
            }
            if age % 37 == 0:
                fields["failed"] = 2
            pipeline.hset(stats.minute_key(minute), mapping=fields)
            pipeline.expire(stats.minute_key(minute), stats.SERIES_TTL)
        pipeline.execute()
    return now


def test_series_adds_minutes_into_steps(redis_server, day_of_series):
    redis = redis_server.client()
    hour = stats.series(redis, 60, now=day_of_series)
    assert len(hour) == 60 and hour[-1].start.timestamp() == int(day_of_series // 60) * 60
    assert hour[-1].depth == {"high": 100, "default": 3, "low": 0}
    day = stats.series(redis, 24 * 60, step=15, now=day_of_series)
    assert all(point.start.minute % 15 == 0 for point in day)
    total_done = sum(int(redis.hget(stats.minute_key(int(day_of_series // 60) - age), "done")) for age in range(1440))
    assert sum(point.done for point in day) == total_done
    assert day[-2].median_wait["low"] == pytest.approx(450.0)  # all in the 300-600 s bucket: its middle


def test_median_interpolates_within_the_bucket():
    assert stats.median({"1.0": 1, "2.5": 1, "5.0": 2}) == pytest.approx(2.5)
    assert stats.median({"+Inf": 3}) == 3600


def test_a_minute_with_nothing_measured_breaks_the_line():
    times = [stats.Point(start=stats.datetime.fromtimestamp(60 * i, stats.UTC)).start for i in range(4)]
    svg = charts.lines("t", times, {"high": [1, 2, None, 4]})
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 3


def test_the_queues_page_draws_both_windows(staff_client, day_of_series):
    body = staff_client.get("/admin/queues/").content.decode()
    for window in ("Last hour", "Last 24 hours"):
        assert f"<h2>{window}</h2>" in body
    assert body.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 6
    assert "Photos done and failed, per minute" in body and "Photos done and failed, per 15 minutes" in body
    assert "Queued jobs" in body and "Median wait" in body
    assert re.search(r"<title>\d\d:\d\d done: \d+</title>", body)
    assert "<script" not in body.split('id="charts-1"')[1].split("<h2>Workers")[0]
    assert 'id="scheduler"' in body and "Not running" in body


def test_the_charts_in_a_browser(page, live_server, staff_user, day_of_series):  # noqa: F811
    page.goto(live_server.url + "/admin/login/?next=/admin/queues/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "a long admin password")
    page.click("input[type=submit]")
    page.wait_for_url(live_server.url + "/admin/queues/")
    charts_shown = page.locator("svg.chart")
    assert charts_shown.count() == 6
    box = charts_shown.first.bounding_box()
    assert box["width"] > 300 and box["height"] > 80
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#charts-1").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "queues-charts.png"), full_page=True)
