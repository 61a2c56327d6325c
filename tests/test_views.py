"""The gallery pages: every page as its owner, as nobody (to sign-in), and as another user (404)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from jobs.make_renditions import make_photo_renditions, make_reference_renditions
from recognition import engine
from recognition.models import (
    Alert,
    Face,
    FaceGroup,
    Person,
    Photo,
    PhotoStatus,
    ReferencePhoto,
    ReferenceStatus,
)
from tests.conftest import face_file, upload_of

pytestmark = pytest.mark.django_db


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), (200, 120, 40))
    image.paste((20, 40, 200), (0, 0, width // 2, height // 4))  # a mark in the top-left corner
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def fake_encoding(seed: int) -> bytes:
    return engine.encoding_to_bytes(np.random.default_rng(seed).normal(0, 0.1, 128))


@pytest.fixture
def person(user) -> Person:
    obama = Person.objects.create(owner=user, name="Obama")
    reference = ReferencePhoto.objects.create(
        person=obama,
        image=upload_of("people/obama/portrait_2012.jpg"),
        status=ReferenceStatus.DONE,
        encoding=fake_encoding(1),
    )
    make_reference_renditions(reference.pk)  # as the encoding job does
    return obama


@pytest.fixture
def photo(user, person) -> Photo:
    """A processed photo with two faces, the left one matched to Obama, and its alert."""
    photo = Photo.objects.create(
        owner=user,
        image=upload_of("groups/obama_biden.jpg"),
        original_name="obama_biden.jpg",
        status=PhotoStatus.DONE,
    )
    _, photo.width, photo.height = engine.open_image(face_file("groups/obama_biden.jpg").open("rb"), max_side=64)
    photo.thumbnail.save("thumb.jpg", ContentFile(jpeg(40, 30)), save=False)
    photo.save()
    Face.objects.create(photo=photo, top=50, left=100, bottom=150, right=200, encoding=fake_encoding(2),
                        person=person, distance=0.335)  # fmt: skip
    Face.objects.create(photo=photo, top=60, left=300, bottom=160, right=400, encoding=fake_encoding(3))
    Alert.objects.create(owner=user, photo=photo, person=person, face=photo.faces.first(), distance=0.335)
    make_photo_renditions(photo.pk)  # the web image and face crops, as the upload job makes them
    photo.refresh_from_db()
    return photo


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def owner(client, user) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def intruder(other_user) -> Client:
    client = Client()
    client.force_login(other_user)
    return client


def page_urls(photo: Photo, person: Person) -> list[str]:
    face = photo.faces.first()
    return [
        reverse("gallery"),
        reverse("photo", args=[photo.pk]),
        reverse("people"),
        reverse("person", args=[person.pk]),
        reverse("alerts"),
        reverse("settings"),
        reverse("photo-status") + f"?ids={photo.pk}",
        reverse("photo-original", args=[photo.pk]),
        reverse("photo-web", args=[photo.pk]),
        reverse("photo-thumbnail", args=[photo.pk]),
        reverse("face-image", args=[face.pk]),
        reverse("reference-image", args=[person.references.first().pk]),
    ]


def test_every_page_needs_a_user(client, photo, person):
    for url in page_urls(photo, person):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login") + "?next="), url


def test_every_page_answers_its_owner(owner, photo, person):
    for url in page_urls(photo, person):
        response = owner.get(url)
        assert response.status_code == 200, url


def test_other_users_objects_and_media_are_not_found(intruder, photo, person):
    objects_of_alice = [url for url in page_urls(photo, person) if "/photos/status/" not in url]
    for url in objects_of_alice:
        if url not in (reverse("gallery"), reverse("people"), reverse("alerts"), reverse("settings")):
            assert intruder.get(url).status_code == 404, url
    assert intruder.get(reverse("photo-status") + f"?ids={photo.pk}").json() == {"photos": []}
    assert "obama_biden.jpg" not in intruder.get(reverse("gallery")).content.decode()
    assert "Obama" not in intruder.get(reverse("people")).content.decode()


def test_other_users_objects_cannot_be_changed(intruder, photo, person):
    face = photo.faces.first()
    alert = Alert.objects.get()
    actions = [
        (reverse("photo-reprocess", args=[photo.pk]), {}),
        (reverse("photo-delete", args=[photo.pk]), {}),
        (reverse("face-name", args=[face.pk]), {"new_name": "X"}),
        (reverse("face-reject", args=[face.pk]), {}),
        (reverse("person-rename", args=[person.pk]), {"name": "X"}),
        (reverse("person-delete", args=[person.pk]), {}),
        (reverse("person-references", args=[person.pk]), {"image": upload_of("people/biden/senate.jpg")}),
        (reverse("reference-delete", args=[person.references.first().pk]), {}),
        (reverse("alert-read", args=[alert.pk]), {}),
    ]
    for url, data in actions:
        assert intruder.post(url, data).status_code == 404, url
    assert Photo.objects.filter(pk=photo.pk).exists() and Person.objects.get(pk=person.pk).name == "Obama"
    assert not Alert.objects.get(pk=alert.pk).seen
    # Another user's person is not a choice either, not even as a merge target.
    mine = Person.objects.create(owner=get_user_model().objects.get(username="mallory"), name="Mine")
    response = intruder.post(reverse("person-merge", args=[mine.pk]), {"target": person.pk})
    assert response.status_code == 302 and Person.objects.filter(pk=person.pk).exists()


def test_gallery_lists_cards_with_status_and_names(owner, photo, user):
    queued = Photo.objects.create(owner=user, image=upload_of("nofaces/cat.png"), original_name="cat.png")
    failed = Photo.objects.create(
        owner=user, image=upload_of("nofaces/rocket.jpg"), status=PhotoStatus.FAILED, error="Unreadable image: x"
    )
    html = owner.get(reverse("gallery")).content.decode()
    assert 'name="images"' in html and "multiple" in html and "csrfmiddlewaretoken" in html
    assert f'data-photo-id="{photo.pk}" data-status="done"' in html
    assert f'data-photo-id="{queued.pk}" data-status="queued"' in html
    assert f'data-photo-id="{failed.pk}" data-status="failed"' in html and "Unreadable image: x" in html
    assert html.index(f'data-photo-id="{failed.pk}"') < html.index(f'data-photo-id="{photo.pk}"')  # newest first
    assert reverse("photo-thumbnail", args=[photo.pk]) in html
    assert "Obama" in html


def test_gallery_is_paginated(owner, user):
    for n in range(30):
        Photo.objects.create(owner=user, image=f"photos/x/{n}.jpg", original_name=f"p{n}.jpg")
    first = owner.get(reverse("gallery")).content.decode()
    second = owner.get(reverse("gallery") + "?page=2").content.decode()
    cards = re.compile(r'data-photo-id="\d+"')
    assert len(cards.findall(first)) == 24 and len(cards.findall(second)) == 6
    assert "p29.jpg" in first and "p0.jpg" in second


@pytest.mark.parametrize("ids", ["99999999999999999999999", "1,x", "-1", "0", "1.5", "١٢"])
def test_status_endpoint_answers_400_to_bad_ids(owner, ids):
    response = owner.get(reverse("photo-status"), {"ids": ids})
    assert response.status_code == 400
    assert response.json() == {"error": "ids: photo ids are whole numbers from 1, separated by commas"}


def test_status_endpoint_gives_status_names_and_thumbnail(owner, photo, user):
    queued = Photo.objects.create(owner=user, image="photos/x/q.jpg")
    body = owner.get(reverse("photo-status") + f"?ids={photo.pk},{queued.pk},999").json()
    cards = {card["id"]: card for card in body["photos"]}
    assert set(cards) == {photo.pk, queued.pk}
    assert cards[photo.pk]["status"] == "done" and cards[photo.pk]["names"] == ["Obama"]
    assert cards[photo.pk]["thumbnail"] == reverse("photo-thumbnail", args=[photo.pk])
    assert cards[queued.pk]["status"] == "queued" and cards[queued.pk]["thumbnail"] is None


def test_gallery_form_without_javascript_uploads_each_file(owner, user):
    files = [upload_of("people/obama/senate.jpg"), ContentFile(b"not an image", name="notes.txt")]
    response = owner.post(reverse("gallery"), {"images": files}, follow=True)
    text = response.content.decode()
    assert "senate.jpg: uploaded." in text
    assert "notes.txt: This is not an image we can read" in text
    assert list(Photo.objects.filter(owner=user).values_list("original_name", flat=True)) == ["senate.jpg"]


def test_photo_page_draws_a_box_per_face_in_percent(owner, photo):
    html = owner.get(reverse("photo", args=[photo.pk])).content.decode()
    assert html.count('class="face-box') == 2
    left = 100 * 100 / photo.width
    assert f"left: {left:.3f}%" in html
    assert '1<span class="label-name">. Obama 0.34' in html and '2<span class="label-name">. unknown' in html
    assert reverse("photo-web", args=[photo.pk]) in html
    assert "Not Obama" in html and 'name="new_name"' in html


def test_web_rendition_is_upright(owner, user):
    # Stored 200x100 with EXIF orientation 6 (rotate 90° clockwise): upright it is 100x200.
    photo = Photo.objects.create(owner=user, image=ContentFile(jpeg(200, 100, orientation=6), name="r.jpg"),
                                 width=100, height=200, status=PhotoStatus.DONE)  # fmt: skip
    make_photo_renditions(photo.pk)
    response = owner.get(reverse("photo-web", args=[photo.pk]))
    assert response["Content-Type"] == "image/jpeg" and "private" in response["Cache-Control"]
    image = Image.open(io.BytesIO(body(response)))
    assert image.size == (100, 200)
    # The blue mark of the stored top-left corner is now at the top right.
    assert image.getpixel((90, 10))[2] > 150 and image.getpixel((10, 10))[2] < 100


def test_media_views_serve_the_right_files(owner, photo, person):
    original = owner.get(reverse("photo-original", args=[photo.pk]))
    assert b"".join(original.streaming_content) == face_file("groups/obama_biden.jpg").read_bytes()
    assert 'filename="obama_biden.jpg"' in original["Content-Disposition"]
    thumb = owner.get(reverse("photo-thumbnail", args=[photo.pk]))
    assert Image.open(io.BytesIO(b"".join(thumb.streaming_content))).size == (40, 30)
    crop = Image.open(io.BytesIO(body(owner.get(reverse("face-image", args=[photo.faces.first().pk])))))
    assert max(crop.size) <= 200
    reference = owner.get(reverse("reference-image", args=[person.references.first().pk]))
    assert max(Image.open(io.BytesIO(body(reference))).size) <= 400


def test_thumbnail_is_not_found_until_the_job_made_it(owner, user):
    photo = Photo.objects.create(owner=user, image="photos/x/q.jpg")
    assert owner.get(reverse("photo-thumbnail", args=[photo.pk])).status_code == 404


def test_there_is_no_public_media_url(owner, photo):
    assert owner.get("/media/" + photo.image.name).status_code == 404


def test_people_list_shows_a_face_and_counts(owner, photo, person):
    html = owner.get(reverse("people")).content.decode()
    assert "Obama" in html and "in 1 photo" in html and "1 reference" in html
    assert reverse("face-image", args=[photo.faces.get(person=person).pk]) in html


def test_add_a_person_with_a_reference(owner, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner.post(
            reverse("people"), {"name": " Biden ", "image": upload_of("people/biden/vp_portrait_2013.jpg")}
        )
    biden = Person.objects.get(owner=user, name="Biden")
    assert response.url == reverse("person", args=[biden.pk])
    assert biden.references.get().status == ReferenceStatus.QUEUED
    assert len(callbacks) == 1  # the encoding job, queued once the reference is committed


def test_person_page_lists_references_and_photos(owner, photo, person):
    html = owner.get(reverse("person", args=[person.pk])).content.decode()
    assert reverse("reference-image", args=[person.references.first().pk]) in html
    assert f'data-photo-id="{photo.pk}"' in html
    assert 'data-status="done"' in html


def test_bad_reference_upload_says_why(owner, person):
    response = owner.post(
        reverse("person-references", args=[person.pk]),
        {"image": ContentFile(b"", name="empty.jpg")},
        follow=True,
    )
    assert "empty.jpg: The file is empty." in response.content.decode()
    assert person.references.count() == 1


def test_rename_a_person(owner, person):
    owner.post(reverse("person-rename", args=[person.pk]), {"name": "Barack Obama"})
    assert Person.objects.get(pk=person.pk).name == "Barack Obama"
    response = owner.post(reverse("person-rename", args=[person.pk]), {"name": ""}, follow=True)
    assert "A name is needed" in response.content.decode()


def test_name_a_face_with_a_new_person(owner, photo):
    face = photo.faces.get(person__isnull=True)
    response = owner.post(reverse("face-name", args=[face.pk]), {"new_name": "Biden"})
    assert response.url == reverse("photo", args=[photo.pk]) + f"#face-{face.pk}"  # focus returns to the face
    face.refresh_from_db()
    assert face.person.name == "Biden" and face.named_by_user
    assert face.person.references.get().source_face == face


def test_name_a_face_needs_exactly_one_choice(owner, photo, person):
    face = photo.faces.get(person__isnull=True)
    response = owner.post(reverse("face-name", args=[face.pk]), {"person": person.pk, "new_name": "B"}, follow=True)
    assert "Choose a person or type a new name" in response.content.decode()
    assert Face.objects.get(pk=face.pk).person is None


def test_not_this_person(owner, photo, person):
    face = photo.faces.get(person=person)
    owner.post(reverse("face-reject", args=[face.pk]))
    face.refresh_from_db()
    assert face.person is None and list(face.rejected_people.all()) == [person]
    html = owner.get(reverse("photo", args=[photo.pk])).content.decode()
    assert "not Obama" in html


@pytest.mark.parametrize(
    ("next_url", "lands_on"),
    [
        ("/people/", "/people/"),  # back where the user was
        ("https://evil.example/", "/alerts/"),
        ("//evil.example/", "/alerts/"),
        ("/\\evil.example/", "/alerts/"),
        ("http:/evil.example/", "/alerts/"),
        ("javascript:alert(1)", "/alerts/"),
        ("", "/alerts/"),
    ],
)
def test_marking_an_alert_read_goes_back_only_to_this_site(owner, photo, next_url, lands_on):
    alert = Alert.objects.get()
    response = owner.post(reverse("alert-read", args=[alert.pk]), {"next": next_url})
    assert response.status_code == 302 and response["Location"] == lands_on


def test_delete_a_photo(owner, photo):
    storage = photo.image.storage
    name = photo.image.name
    owner.post(reverse("photo-delete", args=[photo.pk]))
    assert not Photo.objects.filter(pk=photo.pk).exists()
    assert storage.exists(name)  # files go once the deletion is committed: not inside this test's transaction


def test_forms_need_the_csrf_token(user, photo):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("photo-reprocess", args=[photo.pk])).status_code == 403
    assert client.post("/api/photos/", {"image": upload_of("people/obama/senate.jpg")}).status_code == 403


def test_sign_in_and_out(client, user):
    page = client.get(reverse("login")).content.decode()
    assert "Sign up" not in page  # sign-up is off by default
    response = client.post(reverse("login"), {"username": "alice", "password": "correct horse battery"})
    assert response.url == reverse("gallery")
    assert client.get(reverse("gallery")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("gallery")).status_code == 302


def test_sign_up_is_off_by_default(client, db):
    assert client.get(reverse("signup")).status_code == 404


def test_sign_up_when_allowed(client, settings, db):
    settings.ALLOW_SIGNUP = True
    assert "Sign up" in client.get(reverse("login")).content.decode()
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "email": "c@example.org",
            "password1": "a long pass phrase",
            "password2": "a long pass phrase",
        },
    )
    assert response.url == reverse("gallery")
    assert client.get(reverse("gallery")).status_code == 200


def test_a_file_missing_from_storage_is_not_found(owner, user):
    photo = Photo.objects.create(owner=user, image="photos/x/gone.jpg", thumbnail="thumbs/x/gone.jpg")
    for name in ("photo-original", "photo-thumbnail", "photo-web"):
        assert owner.get(reverse(name, args=[photo.pk])).status_code == 404, name


@pytest.mark.parametrize(
    "url", ["/photos/99999999999999999999999/", "/media/photos/99999999999999999999999/web.jpg",
            "/api/photos/99999999999999999999999/", "/people/99999999999999999999999/"]
)  # fmt: skip
def test_ids_too_large_for_the_database_are_not_found(owner, url):
    assert owner.get(url).status_code == 404


def test_ids_too_large_for_the_database_in_forms_and_filters_are_refused_not_errors(owner, group):
    huge = "99999999999999999999999"
    response = owner.post(reverse("photos-bulk"), {"action": "delete", "ids": [huge]}, follow=True)
    assert "Select one or more photos first." in response.content.decode()
    response = owner.post(reverse("group-remove", args=[group.pk]), {"faces": [huge]}, follow=True)
    assert "Tick the faces" in response.content.decode()
    assert owner.get(reverse("gallery") + f"?person={huge}").status_code == 400
    assert owner.get(f"/api/photos/?person={huge}").status_code == 400
    assert owner.post(f"/api/groups/{group.pk}/remove/", {"faces": [int(huge)]}, "application/json").status_code == 400


# Issue 16: no silent mistakes.


def test_not_this_person_names_who_it_is_not(owner, photo, person):
    face = photo.faces.get(person=person)
    response = owner.post(reverse("face-reject", args=[face.pk]), follow=True)
    assert "Noted: this is not Obama." in response.content.decode()
    assert "not None" not in response.content.decode()


def test_a_failed_reference_is_not_their_picture_nor_counted(owner, user):
    cat = Person.objects.create(owner=user, name="Cat person")
    failed = ReferencePhoto.objects.create(
        person=cat, image=upload_of("nofaces/cat.png"), status=ReferenceStatus.FAILED, error="no face found"
    )
    html = owner.get(reverse("people")).content.decode()
    assert reverse("reference-image", args=[failed.pk]) not in html
    assert "0 references" in html and "1 reference photo failed" in html


def test_a_refused_reference_photo_creates_nobody(owner, user):
    response = owner.post(reverse("people"), {"name": "Nobody", "image": ContentFile(b"not an image", name="x.jpg")})
    assert response.status_code == 400
    assert "This is not an image we can read" in response.content.decode()
    assert "Nobody was not added." in response.content.decode()
    assert not Person.objects.filter(owner=user, name="Nobody").exists()


def test_a_name_in_use_asks_before_a_second_person(owner, user, person, django_capture_on_commit_callbacks):
    response = owner.post(reverse("people"), {"name": "obama", "image": upload_of("people/obama/senate.jpg")})
    html = response.content.decode()
    assert response.status_code == 200 and "You already have" in html and "Add to the existing person?" in html
    assert Person.objects.filter(owner=user).count() == 1
    with django_capture_on_commit_callbacks(execute=False):
        response = owner.post(
            reverse("people"), {"name": "obama", "image": upload_of("people/obama/senate.jpg"), "if_exists": "add"}
        )
    assert response.url == reverse("person", args=[person.pk]) and person.references.count() == 2
    owner.post(reverse("people"), {"name": "Obama", "if_exists": "new"})
    assert Person.objects.filter(owner=user, name="Obama").count() == 2


def test_cards_say_matching_while_the_gallery_changes(owner, photo, person, user):
    url = reverse("photo-status") + f"?ids={photo.pk}"
    assert owner.get(url).json()["photos"][0]["matching"] is False
    queued = ReferencePhoto.objects.create(person=person, image=upload_of("people/obama/senate.jpg"))
    (card,) = owner.get(url).json()["photos"]
    assert card["status"] == "done" and card["matching"] is True
    assert 'data-matching="1"' in owner.get(reverse("gallery")).content.decode()
    assert 'data-status="matching"' in owner.get(reverse("photo", args=[photo.pk])).content.decode()
    queued.delete()
    Photo.objects.filter(pk=photo.pk).update(rematch_pending=True)  # a re-match on its way
    assert owner.get(url).json()["photos"][0]["matching"] is True


def test_people_sorted_by_photos_or_name_hidden_and_pictured(owner, photo, person, user):
    Person.objects.create(owner=user, name="Aaron")
    html = owner.get(reverse("people")).content.decode()
    assert html.index('person-name">Obama') < html.index('person-name">Aaron')  # most photos first
    html = owner.get(reverse("people") + "?sort=name").content.decode()
    assert html.index('person-name">Aaron') < html.index('person-name">Obama')
    owner.post(reverse("person-hide", args=[person.pk]), {"hidden": "1"})
    html = owner.get(reverse("people")).content.decode()
    assert f'data-person-id="{person.pk}"' not in html and "1 hidden" in html
    assert f'data-person-id="{person.pk}"' in owner.get(reverse("people") + "?hidden=1").content.decode()
    owner.post(reverse("person-hide", args=[person.pk]), {"hidden": "0"})
    # Their picture: the face the user chose.
    other = Face.objects.create(
        photo=photo, top=1, left=1, bottom=40, right=40, encoding=fake_encoding(9), person=person
    )
    response = owner.post(reverse("face-picture", args=[other.pk]))
    assert response.url.endswith(f"#face-{other.pk}")
    assert reverse("face-image", args=[other.pk]) in owner.get(reverse("people")).content.decode()


def test_photo_page_speaks_plainly(owner, photo):
    html = owner.get(reverse("photo", args=[photo.pk])).content.decode()
    assert 'aria-label="Name face 2"' in html and "sure</span>" in html and "match 0.34" in html
    assert 'aria-live="polite"' in html and 'href="#main"' in html


# Who is this? Groups of unknown faces.


@pytest.fixture
def group(user, photo, person) -> FaceGroup:
    """The photo's unknown face and two more, as one group about 0.57 from Obama's reference: a guess, no match."""
    group = FaceGroup.objects.create(owner=user)
    reference = engine.encoding_from_bytes(fake_encoding(1))
    direction = np.random.default_rng(9).normal(0, 1, 128)
    near = engine.encoding_to_bytes(reference + 0.57 * direction / np.linalg.norm(direction))
    photo.faces.filter(person__isnull=True).update(group=group, encoding=near)
    for left in (500, 700):
        Face.objects.create(photo=photo, group=group, top=60, left=left, bottom=160, right=left + 100, encoding=near)
    return group


def test_who_is_this_lists_groups_with_faces_and_a_guess(owner, group, person):
    html = owner.get(reverse("groups")).content.decode()
    assert f'data-group-id="{group.pk}"' in html and "3 faces" in html
    assert html.count('class="group-faces"') == 1
    for face in group.faces.all():
        assert reverse("face-image", args=[face.pk]) in html
    assert "Looks like" in html and "Obama" in html and f'name="person" value="{person.pk}"' in html
    assert reverse("groups") in owner.get(reverse("people")).content.decode()  # linked from People
    assert "Who is this?" in owner.get(reverse("gallery")).content.decode()  # and from the header


def test_group_page_shows_every_face_with_its_photo(owner, group, photo):
    html = owner.get(reverse("group", args=[group.pk])).content.decode()
    assert html.count('class="group-face"') == 3
    assert f"{reverse('photo', args=[photo.pk])}#face-" in html
    assert 'name="faces"' in html and "Hide" in html


def test_confirming_the_guess_names_the_group(owner, group, person):
    response = owner.post(reverse("group-name", args=[group.pk]), {"person": person.pk})
    assert response.url == reverse("person", args=[person.pk])
    assert Face.objects.filter(person=person, named_by_user=True).count() == 3
    assert not FaceGroup.objects.exists()


def test_group_forms_take_faces_out_merge_and_hide(owner, group, user):
    face = group.faces.first()
    response = owner.post(reverse("group-remove", args=[group.pk]), {"faces": [face.pk]}, follow=True)
    assert "Took 1 face out" in response.content.decode() and group.unknown_faces().count() == 2
    response = owner.post(reverse("group-remove", args=[group.pk]), {"faces": [face.pk]}, follow=True)
    assert "Tick the faces" in response.content.decode()
    other = FaceGroup.objects.create(owner=user)
    Face.objects.filter(pk=face.pk).update(group=other)
    response = owner.post(reverse("group-merge", args=[other.pk]), {"target": group.pk})
    assert response.url == reverse("group", args=[group.pk]) and group.unknown_faces().count() == 3
    assert owner.post(reverse("group-hide", args=[group.pk])).url == reverse("groups")
    assert FaceGroup.objects.get(pk=group.pk).hidden
    assert f'data-group-id="{group.pk}"' in owner.get(reverse("groups") + "?hidden=1").content.decode()
