"""One upload limit for every way in, counted in Redis for all web processes, failing open when Redis is away."""

from __future__ import annotations

import re
import threading
import time

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from recognition import limits
from recognition.limits import Rate
from recognition.models import Person, Photo, ReferencePhoto
from tests.conftest import free_port, post_over_http, upload_of

pytestmark = pytest.mark.django_db(transaction=True)

PORTRAITS = ["people/obama/senate.jpg", "people/biden/senate.jpg", "people/clinton/senate.jpg",
             "people/harris/senate.jpg", "people/obama/portrait_2012.jpg"]  # fmt: skip


def portraits(count: int) -> list[str]:
    from tests.conftest import FACES

    return sorted(f"portraits/{path.name}" for path in (FACES / "portraits").glob("*.jpg"))[:count]


@pytest.mark.parametrize(
    ("text", "rate"),
    [("600/hour", Rate(600, 3600)), ("5/15m", Rate(5, 900)), ("10/minute", Rate(10, 60)),
     ("2/ 3 days", Rate(2, 259200)), ("", None), ("0/hour", None)],
)  # fmt: skip
def test_rates_are_read_like_600_per_hour(text, rate):
    assert Rate.parse(text) == rate


def test_a_bad_rate_says_how_to_write_it():
    with pytest.raises(ValueError, match="write it like 600/hour"):
        Rate.parse("lots")


def test_two_gunicorn_processes_share_one_count(user, start_gunicorn):
    """Each process counted alone before: two of them let twice the limit through."""
    server = start_gunicorn(workers=2, UPLOAD_RATE_LIMIT="10/hour")
    token = Token.objects.create(user=user).key
    results = []
    names = portraits(24)

    def post(batch: list[str]) -> None:
        for name in batch:
            results.append(post_over_http(f"{server.url}/api/photos/", token, name))

    threads = [threading.Thread(target=post, args=(names[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(status for status, _, _ in results)
    assert statuses == [202] * 10 + [429] * 14, statuses
    for status, body, headers in results:
        if status == 429:
            assert body["error"].startswith("Too many uploads: the limit is 10/hour. Try again in ")
            assert 0 < int(headers["Retry-After"]) <= 3600
    assert Photo.objects.filter(owner=user).count() == 10
    served_by = {line.split()[0] for line in server.log.read_text().splitlines() if "POST /api/photos/" in line}
    assert len(served_by) == 2, "both gunicorn processes took uploads"


def test_every_way_in_takes_from_the_same_limit(user, api, redis_server, settings, staff_user):
    settings.UPLOAD_RATE_LIMIT = "2/hour"
    assert api.post("/api/photos/", {"image": upload_of(PORTRAITS[0])}).status_code == 202
    person = Person.objects.create(owner=user, name="Obama")
    page = Client()
    page.force_login(user)
    # The person page's reference form: 10 files in one request, one slot left.
    files = [upload_of(name, name=f"{number}-{name.rsplit('/', 1)[-1]}") for number, name in enumerate(PORTRAITS * 2)]
    response = page.post(f"/people/{person.pk}/references/", {"image": files}, follow=True)
    assert ReferencePhoto.objects.filter(person=person).count() == 1
    shown = [str(message) for message in response.context["messages"]]
    assert sum("Too many uploads: the limit is 2/hour" in message for message in shown) == 9, shown
    # Now at the limit: the API, the gallery form, the people form and the API's references all refuse.
    refused = api.post("/api/photos/", {"image": upload_of(PORTRAITS[1])})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    response = page.post("/", {"images": [upload_of(PORTRAITS[2])]}, follow=True)
    assert any("Too many uploads" in str(message) for message in response.context["messages"])
    page.post("/people/", {"name": "Biden", "image": upload_of(PORTRAITS[3])})
    assert not ReferencePhoto.objects.filter(person__name="Biden").exists()
    answer = api.post(f"/api/people/{person.pk}/references/", {"image": upload_of(PORTRAITS[4])})
    assert answer.status_code == 429 and "Too many uploads" in answer.json()["error"]
    assert Photo.objects.count() == 1 and ReferencePhoto.objects.count() == 1
    # The admin takes no uploads at all: photos and references come in only through the gates above.
    admin = Client()
    admin.force_login(staff_user)
    assert admin.get("/admin/recognition/photo/add/").status_code == 403
    assert admin.get("/admin/recognition/referencephoto/add/").status_code == 403


def test_redis_down_fails_open_for_a_window_then_counts_per_process(api, redis_server, settings):
    settings.UPLOAD_RATE_LIMIT = "1/hour"
    settings.RATE_LIMIT_FAIL_OPEN = 60
    working = settings.RQ_QUEUES
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    settings.RQ_QUEUES = {name: {**queue, "URL": nowhere} for name, queue in working.items()}
    # Inside the window: uploads go through, uncounted (and wait in the database for the queue).
    bodies = [api.post("/api/photos/", {"image": upload_of(name)}) for name in PORTRAITS[:3]]
    assert [response.status_code for response in bodies] == [202] * 3
    # Past it: this process counts alone, against the same limit.
    limits.outage.since = time.monotonic() - 61
    assert api.post("/api/photos/", {"image": upload_of(PORTRAITS[3])}).status_code == 202
    assert api.post("/api/photos/", {"image": upload_of(PORTRAITS[4])}).status_code == 429
    # Redis is back: counted there again (its window is empty: the outage's uploads were not counted).
    settings.RQ_QUEUES = working
    assert api.post("/api/photos/", {"image": upload_of("people/biden/vp_portrait_2013.jpg")}).status_code == 202
    assert limits.outage.since is None
    refused = api.post("/api/photos/", {"image": upload_of("people/hayes/photo_1.jpg")})
    assert refused.status_code == 429
    assert re.search(r"Try again in \d+ (hour|minute)s?\.", refused.json()["error"])
