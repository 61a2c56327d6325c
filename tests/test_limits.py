"""One upload limit for every way in, counted in Redis for all web processes, failing open when Redis is away."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from recognition import limits
from recognition.limits import Rate
from recognition.models import Person, Photo, ReferencePhoto
from tests import images
from tests.conftest import face_file, free_port, post_over_http, upload_of

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


def test_a_photo_or_reference_past_the_face_cap_encodes_the_largest_and_says_so(api, run_jobs, settings):
    settings.FACES_MAX_PER_PHOTO = 2
    big = ["people/obama/portrait_2012.jpg", "people/biden/vp_portrait_2013.jpg"]
    small = ["people/hayes/photo_1.jpg", "people/clinton/senate.jpg", "people/harris/senate.jpg"]
    sheet = SimpleUploadedFile("sheet.jpg", images.tiled_faces(big, small), content_type="image/jpeg")
    photo_id = api.post("/api/photos/", {"image": sheet}).json()["id"]
    person = api.post("/api/people/", {"name": "Many"}, format="json").json()
    sheet.seek(0)
    assert api.post(f"/api/people/{person['id']}/references/", {"image": sheet}).status_code == 202
    run_jobs()
    body = api.get(f"/api/photos/{photo_id}/").json()
    assert body["status"] == "done" and len(body["faces"]) == 2
    assert body["error"] == "5 faces found: only the largest 2 were encoded and matched."
    [reference] = api.get(f"/api/people/{person['id']}/").json()["references"]
    assert reference["status"] == "choose" and len(reference["faces"]) == 2  # the user picks among the two kept
    assert reference["error"] == "5 faces found: only the largest 2 were encoded and matched."


# Bodies too large for a photo are refused from their Content-Length on every way in; the storage quota.


def raw_post(port: int, path: str, length: int, accept: str) -> str:
    """Send only the headers of a large multipart POST and read the answer: the body is never sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {length}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n--x\r\n"
        )
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.decode(errors="replace")


@pytest.mark.parametrize(
    ("path", "accept"),
    [("/", "text/html"), ("/people/1/references/", "text/html"), ("/people/", "text/html"),
     ("/api/photos/", "application/json"), ("/admin/recognition/photo/add/", "text/html")],
)  # fmt: skip
def test_a_body_too_large_is_refused_before_it_is_sent(user, start_gunicorn, path, accept):
    server = start_gunicorn(workers=1, PHOTO_MAX_BYTES=str(1024 * 1024))
    answer = raw_post(server.port, path, 100 * 1024 * 1024, accept)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "The upload is larger than the limit of 1.0 MB: nothing was stored." in answer


def test_the_storage_quota_refuses_past_it_and_the_gallery_shows_it(user, api, client, redis_server, settings):
    sizes = [face_file(name).stat().st_size for name in PORTRAITS[:2]]
    settings.USER_QUOTA_BYTES = sum(sizes)  # the second photo fills it exactly: that still fits
    for name in PORTRAITS[:2]:
        assert api.post("/api/photos/", {"image": upload_of(name)}).status_code == 202
    refused = api.post("/api/photos/", {"image": upload_of(PORTRAITS[2])})
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("Your storage is full: ")
    person = Person.objects.create(owner=user, name="Obama")
    answer = api.post(f"/api/people/{person.pk}/references/", {"image": upload_of(PORTRAITS[4])})
    assert answer.status_code == 403, "references count too"
    client.force_login(user)
    page = client.get("/").content.decode()
    assert re.search(r'<p id="storage" class="muted">Storage: [\d.]+\xa0KB of [\d.]+\xa0KB used', page), page
    settings.USER_QUOTA_BYTES = 0
    assert 'id="storage"' not in client.get("/").content.decode()
    assert api.post("/api/photos/", {"image": upload_of(PORTRAITS[2])}).status_code == 202
