"""Pictures are made once, in the job, and served as files: a media request never decodes an original.

Photos processed before are given their pictures by a job (asked for by the media views or by
`manage.py make_renditions`), never inside a request."""

from __future__ import annotations

import io
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from PIL import Image, ImageDraw, ImageFile

from jobs.enqueue import BULK, get_queue
from recognition import renditions
from recognition.models import Face, Photo, PhotoStatus, ReferencePhoto
from tests.conftest import face_file, free_port, upload_of, wait_for, worker_environment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


class Decoded:
    """Image sizes decoded by this process and by the work horses run_jobs forks: all append to one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.clear()

    def add(self, size: tuple[int, int]) -> None:
        with open(self.path, "a") as log:
            log.write(f"{size[0]} {size[1]}\n")

    def clear(self) -> None:
        self.path.write_text("")

    def sizes(self) -> list[tuple[int, int]]:
        return [tuple(int(n) for n in line.split()) for line in self.path.read_text().splitlines()]

    def __iter__(self):
        return iter(self.sizes())

    def __contains__(self, size) -> bool:
        return tuple(size) in self.sizes()

    def __eq__(self, other) -> bool:
        return self.sizes() == list(other)

    def __bool__(self) -> bool:
        return bool(self.sizes())


@pytest.fixture
def decodes(monkeypatch, tmp_path) -> Decoded:
    """The size of every image Pillow decodes from now on, here or in a work horse (a spy: decoding still
    happens)."""
    seen = Decoded(tmp_path / "decodes.txt")
    load = ImageFile.ImageFile.load

    def spy(image):
        seen.add(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return seen


def huge_png_with_a_face() -> SimpleUploadedFile:
    """An 8000x6000 PNG (48 MP; 1.4 s and 0.2 GB to decode) of a plain field with a portrait in it."""
    big = Image.new("RGB", (8000, 6000), (90, 140, 60))
    with Image.open(face_file("people/obama/portrait_2012.jpg")) as portrait:
        big.paste(portrait.convert("RGB").resize((1200, 1500)), (3000, 2000))
    ImageDraw.Draw(big).rectangle((0, 0, 400, 400), fill=(200, 30, 30))
    out = io.BytesIO()
    big.save(out, format="PNG", compress_level=1)
    return SimpleUploadedFile("huge.png", out.getvalue(), content_type="image/png")


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_media_request_never_decodes_an_original(api, owner, run_jobs, decodes):
    photo_id = api.post("/api/photos/", {"image": huge_png_with_a_face()}).json()["id"]
    run_jobs()
    photo = Photo.objects.get(pk=photo_id)
    assert photo.status == PhotoStatus.DONE and (photo.width, photo.height) == (8000, 6000)
    [face] = photo.faces.all()
    assert (8000, 6000) in decodes, "the job decoded the original, once"

    decodes.clear()
    for url in (f"/media/photos/{photo_id}/web.jpg", f"/media/photos/{photo_id}/thumb.jpg",
                f"/media/faces/{face.pk}.jpg", f"/media/photos/{photo_id}/original"):  # fmt: skip
        response = owner.get(url)
        assert response.status_code == 200, url
        body(response)
    assert decodes == [], "media requests serve stored files and decode nothing"
    web = Image.open(io.BytesIO(body(owner.get(f"/media/photos/{photo_id}/web.jpg"))))
    assert max(web.size) <= renditions.WEB_SIDE and web.size[0] / web.size[1] == pytest.approx(8000 / 6000, 0.01)

    # Naming the face decodes the stored web image only (capped), never the 48 MP original.
    response = owner.post(f"/faces/{face.pk}/name/", {"new_name": "Obama"})
    assert response.status_code == 302
    assert ReferencePhoto.objects.get(source_face=face).thumbnail
    assert decodes and all(w * h <= renditions.RENDITION_MAX_PIXELS for w, h in decodes)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_gunicorn_serving_a_huge_photo_stays_small(api, user, run_jobs, redis_server):
    """The memory a web process needs to serve a 48 MP photo's pages 30 times: no decode, so no growth
    of the size of one (at least 144 MB of RGB pixels)."""
    photo_id = api.post("/api/photos/", {"image": huge_png_with_a_face()}).json()["id"]
    run_jobs()
    face = Photo.objects.get(pk=photo_id).faces.get()
    client = Client()
    client.force_login(user)
    cookie = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"}
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "photosite.wsgi", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "--threads", "4"]  # fmt: skip
    server = subprocess.Popen(command, cwd=settings.BASE_DIR, env=worker_environment(redis_server.url),
                              start_new_session=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: fetch(base + "/accounts/login/") == 200, timeout=60, interval=0.2)
        [worker] = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        urls = [
            f"/media/photos/{photo_id}/web.jpg",
            f"/media/photos/{photo_id}/thumb.jpg",
            f"/media/faces/{face.pk}.jpg",
        ]
        assert all(fetch(base + url, cookie) == 200 for url in urls)
        before = peak_rss_mb(int(worker))
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda url: fetch(base + url, cookie), urls * 10))
        assert answers == [200] * 30
        assert peak_rss_mb(int(worker)) - before < 50
    finally:
        server.terminate()
        server.wait(timeout=30)


def fetch(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError:
        return 0


def test_a_rendition_larger_than_any_we_make_is_refused_from_its_header():
    out = io.BytesIO()
    Image.new("RGB", (4000, 3000)).save(out, format="JPEG")
    with pytest.raises(ValueError, match="larger than any we make"):
        renditions.open_rendition(out.getvalue())


def test_shrunk_leaves_the_image_alone_and_copies_only_to_shrink():
    with Image.open(face_file("people/obama/portrait_2012.jpg")) as opened:
        image = opened.convert("RGB")
    fits = renditions.shrunk(image, max(image.size))
    assert fits is image
    smaller = renditions.shrunk(image, 100)
    assert smaller is not image and max(smaller.size) == 100
    assert max(renditions.shrunk(image, min(image.size)).size) == min(image.size)  # one side too long is enough
    assert image.size == opened.size  # the original is not shrunk in place


def processed_before_pictures(api, run_jobs, relative: str = "groups/obama_biden.jpg") -> Photo:
    """A photo processed by a version that stored no web image or crops."""
    photo_id = api.post("/api/photos/", {"image": upload_of(relative)}).json()["id"]
    run_jobs()
    Photo.objects.filter(pk=photo_id).update(web_image="")
    Face.objects.filter(photo_id=photo_id).update(crop="")
    return Photo.objects.get(pk=photo_id)


def test_a_photo_processed_before_gets_its_pictures_from_a_job(api, owner, run_jobs, decodes):
    photo = processed_before_pictures(api, run_jobs)
    face = photo.faces.first()
    decodes.clear()
    assert owner.get(f"/media/photos/{photo.pk}/web.jpg").status_code == 404
    assert owner.get(f"/media/faces/{face.pk}.jpg").status_code == 404
    assert decodes == [], "not made in the request"
    assert len(get_queue(BULK).job_ids) == 1, "one job asked for, however many requests"

    run_jobs()
    photo.refresh_from_db()
    assert photo.web_image and all(f.crop for f in photo.faces.all())
    assert owner.get(f"/media/photos/{photo.pk}/web.jpg").status_code == 200
    assert owner.get(f"/media/faces/{face.pk}.jpg").status_code == 200


def test_make_renditions_queues_every_photo_and_reference_without_pictures(api, run_jobs):
    photos = [processed_before_pictures(api, run_jobs, name) for name in ("groups/obama_biden.jpg", "nofaces/cat.png")]
    person_id = api.post("/api/people/", {"name": "Obama"}, format="json").json()["id"]
    api.post(f"/api/people/{person_id}/references/", {"image": upload_of("people/obama/portrait_2012.jpg")})
    run_jobs()
    ReferencePhoto.objects.update(thumbnail="")

    out = io.StringIO()
    call_command("make_renditions", "--dry-run", stdout=out)
    assert "2 photos and 1 references lack pictures" in out.getvalue()
    call_command("make_renditions", stdout=io.StringIO())
    run_jobs()
    assert all(Photo.objects.get(pk=photo.pk).has_renditions() for photo in photos)
    assert ReferencePhoto.objects.get().thumbnail
    out = io.StringIO()
    call_command("make_renditions", "--dry-run", stdout=out)
    assert "0 photos and 0 references" in out.getvalue()
