"""manage.py media_check: rows whose file is missing and files no row points to; --fix removes only orphans."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from recognition.models import Photo
from tests.conftest import upload_of

pytestmark = pytest.mark.django_db(transaction=True)


def media_check(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("media_check", *args, stdout=out, stderr=err)
    return out.getvalue()


def processed_photo(api, run_jobs) -> Photo:
    photo_id = api.post("/api/photos/", {"image": upload_of("groups/obama_biden.jpg")}).json()["id"]
    run_jobs()
    return Photo.objects.get(pk=photo_id)


@pytest.mark.multihost
def test_media_check_on_s3_finds_a_deleted_object_and_an_orphan(s3_media, api, run_jobs, staff_client):
    photo = processed_photo(api, run_jobs)
    s3_media.client.delete_object(Bucket=s3_media.bucket, Key=f"site/{photo.thumbnail.name}")
    orphan = "photos/ab/ab0123456789orphan.jpg"
    s3_media.client.put_object(Bucket=s3_media.bucket, Key=f"site/{orphan}", Body=b"left behind")
    s3_media.client.put_object(Bucket=s3_media.bucket, Key="elsewhere/x.jpg", Body=b"x")

    report = media_check("--min-age", "0")
    assert f"missing  photo {photo.pk} thumbnail: {photo.thumbnail.name}" in report
    assert f"orphan   {orphan}" in report
    assert "1 missing, 1 orphans" in report and "nothing deleted" in report
    assert orphan in s3_media.names()

    page = staff_client.get("/admin/queues/").content.decode()
    assert 'id="media-check"' in page

    fixed = media_check("--fix", "--min-age", "0")
    assert f"deleted  {orphan}" in fixed and "1 deleted" in fixed
    assert orphan not in s3_media.names()
    assert photo.image.name in s3_media.names(), "files rows point to stay"
    everything = s3_media.client.list_objects_v2(Bucket=s3_media.bucket)["Contents"]
    assert "elsewhere/x.jpg" in [item["Key"] for item in everything], "nothing outside S3_PREFIX is touched"
    assert "1 missing, 0 orphans" in media_check("--min-age", "0"), "a missing file is reported, never fixed"


def test_media_check_on_disk_leaves_young_files_alone(api, run_jobs, staff_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path  # other tests' files are not this test's orphans
    photo = processed_photo(api, run_jobs)
    Path(photo.web_image.path).unlink()
    orphan = tmp_path / "faces" / "zz" / "zz-orphan.jpg"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left behind")

    report = media_check()  # default --min-age: a file written just now may be an upload in flight
    assert "1 missing" in report and "0 orphans" in report and "younger than" in report
    assert orphan.exists()
    assert "1 deleted" in media_check("--fix", "--min-age", "0") and not orphan.exists()
    assert Path(photo.image.path).exists()
    assert staff_client.get("/api/queues/").json()["media_check"]["missing_count"] == 1
