"""Bad input through the real API and a real RQ worker: each ends with a clear message, and the worker lives on."""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from PIL import ImageFile
from rest_framework.authtoken.models import Token
from rq.job import Job

from jobs.enqueue import UPLOADS, get_queue, photo_job_id
from recognition import engine
from recognition.models import Person, Photo, PhotoManager, PhotoStatus, ReferencePhoto
from recognition.uploads import UploadRejected, check_content_length, clean_name
from tests import images
from tests.conftest import face_file, post_over_http

pytestmark = pytest.mark.django_db(transaction=True)


def post(api, data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    return api.post("/api/photos/", {"image": SimpleUploadedFile(name, data, content_type=content_type)})


def accepted(api, data: bytes, name: str = "photo.jpg") -> int:
    response = post(api, data, name)
    assert response.status_code == 202, response.content
    return response.json()["id"]


def photo_body(api, photo_id: int) -> dict:
    return api.get(f"/api/photos/{photo_id}/").json()


def good_photo(api) -> int:
    return accepted(api, face_file("people/biden/senate.jpg").read_bytes(), "senate.jpg")


# Refused at the door: 400 or 413 with an "error", nothing stored.


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "empty.jpg", "The file is empty."),
        (b"Dear diary, today I uploaded a text file.\n", "notes.jpg", "This is not an image we can read"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 30, "header-only.jpg", "This is not an image we can read"),
    ],
    ids=["empty", "text-named-jpg", "jpeg-signature-only"],
)
def test_not_an_image_is_refused_with_a_message(api, redis_server, data, name, message):
    response = post(api, data, name)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert not Photo.objects.exists()


def test_no_file_is_refused_with_a_message(api, redis_server):
    response = api.post("/api/photos/", {})
    assert response.status_code == 400
    assert "attach an image" in response.json()["error"]


def test_png_bomb_is_refused_from_its_header_before_decoding(api, redis_server, monkeypatch):
    bomb = images.png_bomb(30_000, 30_000)
    assert len(bomb) < 200_000  # 900 megapixels in a small file
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or None)
    response = post(api, bomb, "bomb.png", "image/png")
    assert response.status_code == 400
    assert "too many pixels" in response.json()["error"]
    assert decoded == [], "no pixel was decoded"
    assert not Photo.objects.exists()


def test_file_over_the_size_limit_gets_413(api, redis_server, settings):
    data = face_file(images.PORTRAIT).read_bytes()
    settings.PHOTO_MAX_BYTES = len(data) - 1
    response = post(api, data)
    assert response.status_code == 413
    assert response.json()["error"] == "The file is larger than the limit of 273.4 KB."
    settings.PHOTO_MAX_BYTES = len(data)
    assert post(api, data).status_code == 202


class CountingInput:
    """A request body that counts the bytes read from it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = b"x" * (1024 if size < 0 else min(size, 1024))
        self.read_bytes += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def test_oversized_body_is_refused_before_it_is_read(api, redis_server, settings):
    settings.PHOTO_MAX_BYTES = 1024 * 1024
    body = CountingInput()
    response = api.generic(
        "POST",
        "/api/photos/",
        content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(50 * 1024 * 1024),
        **{"wsgi.input": body},
    )
    assert response.status_code == 413
    assert body.read_bytes == 0
    with pytest.raises(UploadRejected, match="Content-Length"):
        check_content_length({"CONTENT_LENGTH": "a lot"})


def padded_multipart(length: int) -> bytes:
    """A multipart body of exactly this length: the portrait in `image`, padding in another field."""
    image = face_file(images.PORTRAIT).read_bytes()

    def body(padding: int) -> bytes:
        upload = SimpleUploadedFile("portrait.jpg", image, content_type="image/jpeg")
        return encode_multipart(BOUNDARY, {"image": upload, "padding": "x" * padding})

    data = body(length - len(body(0)))
    assert len(data) == length
    return data


@pytest.fixture
def upload_routes(user, api, client) -> dict:
    """Every form and API call that takes one photo: (client, path)."""
    person = Person.objects.create(owner=user, name="Obama")
    client.force_login(user)
    return {
        "api photo": (api, "/api/photos/"),
        "api reference": (api, f"/api/people/{person.pk}/references/"),
        "page reference": (client, f"/people/{person.pk}/references/"),
    }


@pytest.mark.parametrize("route", ["api photo", "api reference", "page reference"])
def test_413_from_the_content_length_before_a_byte_is_read(upload_routes, redis_server, settings, route):
    """Just over the limit (with room for the multipart envelope) is refused unread; at it, the photo is read."""
    client, path = upload_routes[route]
    settings.PHOTO_MAX_BYTES = 1024 * 1024
    body = CountingInput()
    declared = settings.PHOTO_MAX_BYTES + 64 * 1024  # the README's room for the multipart envelope
    response = client.generic(
        "POST", path, content_type="multipart/form-data; boundary=xyz", CONTENT_LENGTH=str(declared + 1),
        **{"wsgi.input": body},
    )  # fmt: skip
    assert response.status_code == 413
    assert body.read_bytes == 0
    assert "larger than the limit of 1.0 MB" in response.content.decode()

    # A body of exactly that length (the photo, padded with a form field) is read and accepted.
    response = client.generic("POST", path, padded_multipart(declared), content_type=MULTIPART_CONTENT)
    assert response.status_code in (202, 302), response.content
    assert Photo.objects.exists() or ReferencePhoto.objects.exists()


@pytest.mark.parametrize(("route", "page"), [("api photo", False), ("page reference", True)])
def test_a_browser_is_told_too_large_on_a_page_and_the_api_in_json(upload_routes, redis_server, settings, route, page):
    """A form post from a browser (Accept: text/html) gets a page to go back from; the API answers JSON
    whatever the client accepts."""
    client, path = upload_routes[route]
    settings.PHOTO_MAX_BYTES = 1024
    response = client.generic(
        "POST", path, content_type="multipart/form-data; boundary=xyz", CONTENT_LENGTH=str(10 * 1024 * 1024),
        HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8", **{"wsgi.input": CountingInput()},
    )  # fmt: skip
    assert response.status_code == 413
    if page:
        assert response["Content-Type"].startswith("text/html") and b"<h1>Too large</h1>" in response.content
    else:
        assert response.json() == {"error": "The upload is larger than the limit of 1.0 KB: nothing was stored."}


# Accepted, then failed on the photo with a readable error; the worker goes on to the next photo.


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (images.truncated(images.PORTRAIT, 0.5), "truncated.jpg"),
        (images.truncated("nofaces/cat.png", 0.5), "truncated.png"),
    ],
    ids=["truncated-jpeg", "truncated-png"],
)
def test_damaged_image_fails_on_the_photo_and_the_worker_goes_on(api, run_jobs, data, name):
    broken_id = accepted(api, data, name)
    good_id = good_photo(api)
    run_jobs(expect_failures=True)
    broken = photo_body(api, broken_id)
    assert broken["status"] == "failed"
    assert broken["error"] == "Unreadable image: this file is damaged (it ends early)"
    assert broken["attempts"] == 1  # never retried
    assert photo_body(api, good_id)["status"] == "done"


# Unusual but valid images: each ends done with its face found.


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (images.cmyk_jpeg, "cmyk.jpg"),
        (images.grayscale_png, "gray.png"),
        (images.sixteen_bit_png, "sixteen.png"),
        (images.sixteen_bit_rgb_png, "sixteen-rgb.png"),
        (images.alpha_png, "alpha.png"),
        (images.heic, "phone.heic"),
        (images.webp, "photo.webp"),
        (images.bmp, "photo.bmp"),
        (images.tiff, "photo.tif"),
    ],
    ids=["cmyk-jpeg", "grayscale-png", "16-bit-png", "48-bit-rgb-png", "alpha-png", "heic", "webp", "bmp", "tiff"],
)
def test_unusual_formats_and_modes_are_read(api, run_jobs, make, name):
    photo_id = accepted(api, make(), name)
    run_jobs()
    body = photo_body(api, photo_id)
    assert body["status"] == "done", body["error"]
    assert (body["width"], body["height"]) == (910, 1137)
    assert len(body["faces"]) == 1


def test_animated_gif_is_read_from_its_first_frame(api, run_jobs):
    face_first = accepted(api, images.animated_gif(images.PORTRAIT, "nofaces/cat.png"), "face-first.gif")
    face_second = accepted(api, images.animated_gif("nofaces/cat.png", images.PORTRAIT), "face-second.gif")
    run_jobs()
    first, second = photo_body(api, face_first), photo_body(api, face_second)
    assert first["status"] == second["status"] == "done"
    assert len(first["faces"]) == 1
    assert second["faces"] == []


@pytest.fixture(scope="module")
def upright_box() -> engine.Box:
    """Where the face is in the upright photo, stored the same way as the oriented copies."""
    [face] = engine.detect_faces(images.oriented_jpeg(1)).faces
    return face.box


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_puts_the_box_on_the_face(api, run_jobs, upright_box, orientation):
    photo_id = accepted(api, images.oriented_jpeg(orientation), f"orientation-{orientation}.jpg")
    run_jobs()
    body = photo_body(api, photo_id)
    assert body["status"] == "done", body["error"]
    assert (body["width"], body["height"]) == (910, 1137)  # the upright size
    [face] = body["faces"]
    box = engine.Box(**face["box"])
    assert box.overlap(upright_box) > 0.8, (box, upright_box)


# Names and duplicates.


def multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart body built by hand, so the file name reaches the server exactly as given."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_hostile_name_never_reaches_a_path(api, run_jobs):
    hostile = "../../../etc/..\\" + "fichier-été-照片-" * 20 + "passwd.jpg"
    assert len(hostile) > 300
    body, content_type = multipart(hostile, face_file(images.PORTRAIT).read_bytes())
    response = api.generic("POST", "/api/photos/", body, content_type=content_type)
    assert response.status_code == 202, response.content
    run_jobs()
    photo = Photo.objects.get(pk=response.json()["id"])
    assert photo.status == PhotoStatus.DONE
    # Stored under a random name with a known extension, inside MEDIA_ROOT.
    assert re.fullmatch(r"photos/[0-9a-f]{2}/[0-9a-f]{32}\.jpg", photo.image.name)
    assert Path(photo.image.path).resolve().is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    assert re.fullmatch(r"thumbs/[0-9a-f]{2}/[0-9a-f]{32}\.jpg", photo.thumbnail.name)
    # The original name is kept as data: no folders, trimmed to 255 characters with its extension.
    assert photo.original_name.startswith("fichier-été-照片-")
    assert len(photo.original_name) <= 255 and photo.original_name.endswith(".jpg")
    assert "/" not in photo.original_name and "\\" not in photo.original_name
    assert "été-照片" in photo.original_name


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("../../x.jpg", "x.jpg"),
        ("C:\\Users\\me\\IMG_1.JPG", "IMG_1.JPG"),
        ("a\x00b\nc.png", "abc.png"),
        ("é" * 300 + ".jpg", "é" * 251 + ".jpg"),
        ("", ""),
    ],
)
def test_clean_name(name, kept):
    assert clean_name(name) == kept


def test_the_stored_original_is_the_upload_byte_for_byte(api, redis_server):
    """Checking the header and hashing the file read it: what is stored still starts at its first byte."""
    data = face_file(images.PORTRAIT).read_bytes()
    photo = Photo.objects.get(pk=accepted(api, data))
    with photo.image.open("rb") as stored:
        assert stored.read() == data
    assert photo.sha256 == hashlib.sha256(data).hexdigest()


def test_unknown_extension_is_stored_as_img(api, redis_server):
    photo_id = accepted(api, face_file(images.PORTRAIT).read_bytes(), "photo.php")
    assert re.fullmatch(r"photos/[0-9a-f]{2}/[0-9a-f]{32}\.img", Photo.objects.get(pk=photo_id).image.name)


def test_same_file_twice_gives_back_the_first_photo(api, other_api, redis_server):
    data = face_file(images.PORTRAIT).read_bytes()
    first = post(api, data, "a.jpg")
    second = post(api, data, "b.jpg")
    assert first.status_code == 202 and second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["duplicate"] is True and "uploaded before" in second.json()["message"]
    assert Photo.objects.count() == 1
    assert get_queue(UPLOADS).count == 1  # queued once
    # Another user's identical file is their own photo: no hint that someone else has it.
    theirs = post(other_api, data, "c.jpg")
    assert theirs.status_code == 202 and theirs.json()["duplicate"] is False
    assert theirs.json()["id"] != first.json()["id"]


def test_eps_renamed_jpg_is_refused_and_never_reaches_ghostscript(api, user, run_jobs, monkeypatch):
    """Pillow would hand EPS to Ghostscript, which runs the file's PostScript: only documented formats open."""
    from PIL import EpsImagePlugin

    called = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kwargs: called.append(args))
    data = images.eps()
    assert data.startswith(b"%!PS-Adobe")
    response = post(api, data, "x.jpg")
    assert response.status_code == 400
    assert response.json()["error"].startswith("This is not an image we can read: not a known image format")
    assert not Photo.objects.exists()
    # One already stored (from before this check) fails in the worker the same way.
    photo = Photo.objects.create(owner=user, image=SimpleUploadedFile("x.jpg", data), status=PhotoStatus.QUEUED)
    from jobs.enqueue import enqueue_photo

    enqueue_photo(photo, UPLOADS)
    run_jobs(expect_failures=True)
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.FAILED and photo.error.startswith("Unreadable image: not a known image format")
    assert called == []
    # Its failed job stays a week on the Queues page, to be read and requeued or deleted.
    queue = get_queue(UPLOADS)
    assert queue.failed_job_registry.get_job_ids() == [photo_job_id(photo.pk)]
    assert 7 * 24 * 3600 - 600 < queue.connection.ttl(Job.key_for(photo_job_id(photo.pk))) <= 7 * 24 * 3600


def stored_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(path.relative_to(root)) for path in (root / "photos").rglob("*") if path.is_file()}


def test_the_same_file_five_times_at_once_makes_one_photo(user, start_gunicorn):
    """Over HTTP to two gunicorn processes with threads: the unique (owner, sha256) lets one request insert."""
    server = start_gunicorn(workers=2, threads=4)
    token = Token.objects.create(user=user).key
    files_before = stored_files()
    barrier = threading.Barrier(5)
    results = []

    def post() -> None:
        barrier.wait()
        results.append(post_over_http(f"{server.url}/api/photos/", token, images.PORTRAIT))

    threads = [threading.Thread(target=post) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _, _ in results) == [200] * 4 + [202]
    assert len({body["id"] for _, body, _ in results}) == 1
    assert sum(body["duplicate"] for _, body, _ in results) == 4
    assert Photo.objects.count() == 1
    assert stored_files() - files_before == {Photo.objects.get().image.name}, "the losers' files are not kept"


def test_a_request_that_loses_the_race_answers_as_a_duplicate(api, redis_server, monkeypatch):
    """The lookup before the insert misses (another request has not committed yet): the insert then fails
    on the constraint, and the answer is the photo that won, with no stray file left in storage."""
    data = face_file(images.PORTRAIT).read_bytes()
    first = post(api, data, "a.jpg").json()
    files_before = stored_files()
    real_filter = PhotoManager.filter
    missed = []

    def filter_missing_once(self, *args, **kwargs):
        if "sha256" in kwargs and not missed:
            missed.append(True)
            return real_filter(self, pk=-1)
        return real_filter(self, *args, **kwargs)

    monkeypatch.setattr(PhotoManager, "filter", filter_missing_once, raising=False)
    second = post(api, data, "b.jpg")
    assert missed and second.status_code == 200
    assert second.json() == {**second.json(), "id": first["id"], "duplicate": True}
    assert Photo.objects.count() == 1
    assert stored_files() == files_before


def test_the_migration_keeps_every_duplicate_photo_and_the_hash_of_the_oldest(user, other_user):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before = [("recognition", "0006_remove_alert_delivery_columns")]
    latest = executor.loader.graph.leaf_nodes("recognition")
    executor.migrate(before)
    old_photo = MigrationExecutor(connection).loader.project_state(before).apps.get_model("recognition", "Photo")
    rows = [old_photo.objects.create(owner_id=owner.pk, image=f"photos/{n}.jpg", sha256="ab" * 32)
            for n, owner in enumerate([user, user, user, other_user])]  # fmt: skip
    MigrationExecutor(connection).migrate(latest)
    hashes = dict(Photo.objects.values_list("pk", "sha256"))
    assert hashes == {rows[0].pk: "ab" * 32, rows[1].pk: "", rows[2].pk: "", rows[3].pk: "ab" * 32}
