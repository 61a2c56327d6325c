"""Media on S3-compatible storage (moto's server, real django-storages and boto3): uploads, jobs and media
views with nothing on local disk, presigned redirects, and storage outages."""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from recognition.models import Photo, PhotoStatus, ReferencePhoto
from tests.conftest import upload_of, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multihost]


def upload(api, relative: str):
    return api.post("/api/photos/", {"image": upload_of(relative)})


@pytest.fixture
def intruder(other_user) -> Client:
    other = Client()
    other.force_login(other_user)
    return other


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def local_files() -> list[Path]:
    return [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


def test_photos_live_in_the_bucket_and_are_served_to_their_owner_only(s3_media, api, intruder, client, user, run_jobs):
    before = local_files()
    response = upload(api, "groups/obama_biden.jpg")
    assert response.status_code == 202, response.content
    photo_id = response.json()["id"]
    run_jobs()
    photo = Photo.objects.get(pk=photo_id)
    assert photo.status == PhotoStatus.DONE, photo.error
    faces = list(photo.faces.all())
    assert len(faces) == 2 and all(face.crop for face in faces)
    keys = s3_media.names()
    for name in (photo.image.name, photo.thumbnail.name, photo.web_image.name, *(f.crop.name for f in faces)):
        assert name in keys, name
    assert {key.split("/")[0] for key in keys} == {"photos", "thumbs", "web", "faces"}
    assert local_files() == before, "nothing of a photo is written to local disk"

    client.force_login(user)
    urls = {
        f"/media/photos/{photo_id}/original": photo.image.name,
        f"/media/photos/{photo_id}/web.jpg": photo.web_image.name,
        f"/media/photos/{photo_id}/thumb.jpg": photo.thumbnail.name,
        f"/media/faces/{faces[0].pk}.jpg": faces[0].crop.name,
    }
    for url, name in urls.items():
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert body(answer) == s3_media.read(name), url
        assert "private" in answer["Cache-Control"]
        assert intruder.get(url).status_code == 404, url


def test_media_redirect_gives_a_short_lived_signed_url(s3_media, settings, api, intruder, client, user, run_jobs):
    settings.MEDIA_REDIRECT = True
    photo_id = upload(api, "people/obama/senate.jpg").json()["id"]
    run_jobs()
    photo = Photo.objects.get(pk=photo_id)
    client.force_login(user)
    answer = client.get(f"/media/photos/{photo_id}/original")
    assert answer.status_code == 302
    url = urllib.parse.urlsplit(answer["Location"])
    query = urllib.parse.parse_qs(url.query)
    assert query["X-Amz-Expires"] == [str(settings.MEDIA_REDIRECT_SECONDS)] and query["X-Amz-Signature"]
    assert url.path.endswith(photo.image.name)  # the random name, never the user's file name
    with urllib.request.urlopen(answer["Location"], timeout=10) as fetched:
        assert fetched.read() == upload_of("people/obama/senate.jpg").read()
        assert 'filename="senate.jpg"' in fetched.headers["Content-Disposition"]
    web = client.get(f"/media/photos/{photo_id}/web.jpg")
    assert web.status_code == 302 and "X-Amz-Signature" in web["Location"]
    assert intruder.get(f"/media/photos/{photo_id}/original").status_code == 404


def test_storage_down_upload_503_job_fails_then_reprocess_recovers(
    s3_media, s3_server, settings, api, client, user, redis_server, start_worker
):
    settings.JOB_RETRY_INTERVALS = [1, 1]
    queued_id = upload(api, "people/obama/senate.jpg").json()["id"]  # stored while storage was up
    keys_before = s3_media.names()
    s3_server.relay.stop()

    refused = upload(api, "people/biden/senate.jpg")
    assert refused.status_code == 503, refused.content
    assert int(refused["Retry-After"]) > 0 and "nothing was stored" in refused.json()["error"]
    assert Photo.objects.count() == 1 and s3_media.names() == keys_before
    person_id = api.post("/api/people/", {"name": "Obama"}, format="json").json()["id"]
    reference = api.post(f"/api/people/{person_id}/references/", {"image": upload_of("people/obama/senate.jpg")})
    assert reference.status_code == 503 and reference["Retry-After"]
    assert not ReferencePhoto.objects.exists() and s3_media.names() == keys_before
    client.force_login(user)
    media = client.get(f"/media/photos/{queued_id}/original")
    assert media.status_code == 503 and media["Retry-After"]

    # The queued photo's job cannot read it: it retries with backoff (a real worker and its scheduler).
    worker = start_worker("--with-scheduler", **s3_media.env)
    wait_for(lambda: Photo.objects.get(pk=queued_id).status == PhotoStatus.FAILED, timeout=120)
    photo = Photo.objects.get(pk=queued_id)
    assert photo.error.startswith("Storage unavailable") and photo.attempts == 3

    s3_server.relay.start()
    call_command("reprocess", "--status", "failed")
    wait_for(lambda: Photo.objects.get(pk=queued_id).status == PhotoStatus.DONE, timeout=120)
    assert Photo.objects.get(pk=queued_id).faces.count() == 1
    worker.terminate()
