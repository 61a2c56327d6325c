"""Select many in the gallery: download (a streamed zip), reprocess or delete in one action."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse

from recognition.models import Photo, PhotoStatus
from tests.conftest import face_file, stored_photo

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, user):
    client.force_login(user)
    return client


def test_download_streams_a_zip_of_the_originals(owner, user, other_user):
    first = stored_photo(user, "people/obama/portrait_2012.jpg", status=PhotoStatus.DONE)
    second = stored_photo(user, "people/obama/portrait_2012.jpg", status=PhotoStatus.DONE)  # same name twice
    cat = stored_photo(user, "nofaces/cat.png", status=PhotoStatus.DONE)
    theirs = stored_photo(other_user, "people/biden/senate.jpg")
    response = owner.post(
        reverse("photos-bulk"), {"action": "download", "ids": [first.pk, second.pk, cat.pk, theirs.pk]}
    )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip" and "attachment" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.namelist() == ["portrait_2012.jpg", "portrait_2012 (2).jpg", "cat.png"]  # not the other user's
    assert archive.read("cat.png") == face_file("nofaces/cat.png").read_bytes()
    assert archive.testzip() is None


def test_delete_asks_how_many_then_deletes(owner, user, other_user):
    mine = [stored_photo(user) for _ in range(3)]
    theirs = stored_photo(other_user)
    data = {"action": "delete", "ids": [p.pk for p in mine] + [theirs.pk], "next": "/?status=waiting"}
    page = owner.post(reverse("photos-bulk"), data)
    assert page.status_code == 200 and "Delete 3 photos?" in page.content.decode()
    assert Photo.objects.count() == 4
    response = owner.post(reverse("photos-bulk"), {**data, "confirm": "1"})
    assert response.url == "/?status=waiting"
    assert list(Photo.objects.all()) == [theirs]


def test_reprocess_many(owner, user, django_capture_on_commit_callbacks):
    photos = [stored_photo(user, status=PhotoStatus.FAILED, error="x") for _ in range(2)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner.post(
            reverse("photos-bulk"), {"action": "reprocess", "ids": [p.pk for p in photos], "confirm": "1"}, follow=True
        )
    assert "Queued 2 photos to be processed again" in response.content.decode()
    assert len(callbacks) == 2 and set(Photo.objects.values_list("status", flat=True)) == {PhotoStatus.QUEUED}


def test_nothing_selected_says_so(owner):
    response = owner.post(reverse("photos-bulk"), {"action": "delete"}, follow=True)
    assert "Select one or more photos first." in response.content.decode()
