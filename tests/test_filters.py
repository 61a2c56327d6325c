"""Gallery filters, the same in the page and the API: people (all of them), unknown faces, status, dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pytest
from django.urls import reverse

from recognition import engine
from recognition.models import Face, Person, PhotoStatus
from tests.conftest import stored_photo

pytestmark = [pytest.mark.django_db, pytest.mark.scaleout]


def face(photo, person=None, left=0) -> Face:
    encoding = engine.encoding_to_bytes(np.zeros(128))
    return Face.objects.create(
        photo=photo, top=0, left=left, bottom=10, right=left + 10, encoding=encoding, person=person
    )


@pytest.fixture
def album(user):
    """Four photos: both people (2024), Obama with a stranger (2023), nobody (failed), Biden (waiting)."""
    obama = Person.objects.create(owner=user, name="Obama")
    biden = Person.objects.create(owner=user, name="Biden")
    both = stored_photo(user, status=PhotoStatus.DONE, taken_at=datetime(2024, 6, 1, 12, tzinfo=UTC))
    face(both, obama), face(both, biden, 20)
    with_stranger = stored_photo(
        user, "people/obama/senate.jpg", status=PhotoStatus.DONE, taken_at=datetime(2023, 1, 1, 9, tzinfo=UTC)
    )
    face(with_stranger, obama), face(with_stranger, None, 20)
    failed = stored_photo(user, "nofaces/cat.png", status=PhotoStatus.FAILED, taken_at=datetime(2022, 1, 1, tzinfo=UTC))
    waiting = stored_photo(user, "people/biden/senate.jpg", taken_at=datetime(2024, 12, 31, 23, tzinfo=UTC))
    face(waiting, biden)
    return {"obama": obama, "biden": biden, "both": both, "stranger": with_stranger, "failed": failed,
            "waiting": waiting}  # fmt: skip


def ids(api, query: str) -> list[int]:
    response = api.get("/api/photos/?" + query)
    assert response.status_code == 200, response.content
    return [photo["id"] for photo in response.json()["results"]]


def test_api_filters_combine(api, album):
    obama, biden = album["obama"].pk, album["biden"].pk
    assert ids(api, "") == [album[k].pk for k in ("waiting", "both", "stranger", "failed")]  # newest taken first
    assert ids(api, f"person={obama}") == [album["both"].pk, album["stranger"].pk]
    assert ids(api, f"person={obama}&person={biden}") == [album["both"].pk]  # photos with both
    assert ids(api, f"person={obama},{biden}") == [album["both"].pk]
    assert ids(api, "unknown=1") == [album["stranger"].pk]
    assert ids(api, "status=failed,waiting") == [album["waiting"].pk, album["failed"].pk]
    assert ids(api, "taken_after=2024-01-01") == [album["waiting"].pk, album["both"].pk]
    assert ids(api, "taken_before=2024-06-01") == [album["both"].pk, album["stranger"].pk, album["failed"].pk]
    assert ids(api, "taken_after=2024-12-31&taken_before=2024-12-31") == [album["waiting"].pk]  # a whole day
    assert ids(api, "taken_before=2024-06-01T11:00:00Z") == [album["stranger"].pk, album["failed"].pk]
    assert ids(api, f"person={biden}&taken_before=2024-12-01&unknown=0") == [album["both"].pk]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("status=lost", "status: one of"),
        ("taken_after=yesterday", "taken_after: give a date"),
        ("person=abc", "person: give the ids"),
        ("person=999999", "person: no such person"),
    ],
)
def test_api_bad_filters_say_why(api, album, query, error):
    response = api.get("/api/photos/?" + query)
    assert response.status_code == 400 and response.json()["error"].startswith(error)


def test_another_users_person_is_no_filter(other_api, album):
    assert other_api.get(f"/api/photos/?person={album['obama'].pk}").status_code == 400


def test_photo_api_gives_the_capture_date(api, album):
    body = api.get(f"/api/photos/{album['both'].pk}/").json()
    assert body["taken_at"] == "2024-06-01T12:00:00Z" and body["taken_at_source"] is None
    album["both"].taken_at_source = "exif"
    album["both"].save()
    assert api.get(f"/api/photos/{album['both'].pk}/").json()["taken_at_source"] == "exif"


def test_gallery_page_filters_keep_the_url_and_show_date_headings(client, user, album):
    client.force_login(user)
    html = client.get(reverse("gallery") + f"?person={album['obama'].pk}&unknown=1").content.decode()
    assert f'data-photo-id="{album["stranger"].pk}"' in html and f'data-photo-id="{album["both"].pk}"' not in html
    assert "1 photo matches the filters" in html and "Clear filters" in html
    assert f'value="{album["obama"].pk}" checked' in html and 'name="unknown" value="1" checked' in html
    html = client.get(reverse("gallery")).content.decode()
    assert html.index("Saturday 1 June 2024") < html.index("Sunday 1 January 2023")
    bad = client.get(reverse("gallery") + "?taken_after=soon")
    assert bad.status_code == 400 and "taken_after: give a date" in bad.content.decode()


def test_gallery_pages_are_numbered_and_keep_the_filters(client, user):
    client.force_login(user)
    for _ in range(30):
        stored_photo(user, status=PhotoStatus.FAILED)
    html = client.get(reverse("gallery") + "?status=failed").content.decode()
    assert 'href="?status=failed&amp;page=2"' in html and 'aria-current="page"' in html
    page_two = client.get(reverse("gallery") + "?status=failed&page=2").content.decode()
    assert len(re.findall(r'class="card" data-photo-id="\d+"', page_two)) == 6


def test_gallery_queries_do_not_grow_with_the_photos(client, user, album, django_assert_max_num_queries):
    client.force_login(user)
    for _ in range(30):
        face(stored_photo(user, status=PhotoStatus.DONE), album["obama"])
    with django_assert_max_num_queries(12):
        response = client.get(reverse("gallery") + f"?person={album['obama'].pk}")
    assert response.status_code == 200
