"""The admin for staff: model admins, the photo actions and the Queues page; others are refused."""

import pytest
from django.contrib.auth import get_user_model

from jobs.enqueue import BULK, GALLERY, get_queue, paused_queues, photo_job_id
from recognition.models import Alert, Face, Person, Photo, PhotoStatus, ReferencePhoto, UserSettings
from tests.conftest import stored_photo, upload_of

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN_PAGES = [
    "/admin/",
    "/admin/queues/",
    "/admin/recognition/photo/",
    "/admin/recognition/face/",
    "/admin/recognition/person/",
    "/admin/recognition/referencephoto/",
    "/admin/recognition/alert/",
    "/admin/recognition/usersettings/",
    "/admin/recognition/facegroup/",
]


@pytest.fixture
def processed(user, run_jobs) -> Photo:
    """Obama known from a portrait, found in a processed photo with an alert."""
    obama = Person.objects.create(owner=user, name="Obama")
    obama.references.create(image=upload_of("people/obama/portrait_2012.jpg"))
    from jobs.encode_reference import encode_reference

    encode_reference(obama.references.get().pk)
    photo = stored_photo(user, "people/obama/congress_address_2009.jpg")
    get_queue(GALLERY).enqueue("jobs.process_photo.process_photo", photo.pk, job_id=photo_job_id(photo.pk))
    run_jobs()
    UserSettings.for_user(user)
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.DONE and Alert.objects.count() == 1
    return photo


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_non_staff_users_are_refused(client, user, page, redis_server):
    client.force_login(user)
    response = client.get(page)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.logout()
    response = client.get(page)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_non_staff_cannot_act_on_queues(client, user, redis_server):
    client.force_login(user)
    response = client.post("/admin/queues/low/pause/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert paused_queues() == set()


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_staff_sees_every_page(staff_client, processed, page):
    response = staff_client.get(page)
    assert response.status_code == 200, page


def test_change_pages_of_every_model(staff_client, processed):
    objects = [processed, processed.faces.get(), Person.objects.get(), ReferencePhoto.objects.get(),
               Alert.objects.get(), UserSettings.objects.get()]  # fmt: skip
    for obj in objects:
        url = f"/admin/recognition/{obj._meta.model_name}/{obj.pk}/change/"
        assert staff_client.get(url).status_code == 200, url


def test_index_links_the_queues_page_and_the_rq_dashboard(staff_client, redis_server):
    body = staff_client.get("/admin/").content.decode()
    assert 'href="/admin/queues/"' in body
    assert 'href="/admin/rq/"' in body


def test_plain_staff_sees_the_queues_page(client, redis_server):
    staff = get_user_model().objects.create_user("sam", "sam@example.com", "long password here", is_staff=True)
    client.force_login(staff)
    response = client.get("/admin/queues/")
    assert response.status_code == 200
    assert b"RQ dashboard" in response.content


def test_photo_list_shows_counts_thumbnail_owner_and_faces(staff_client, processed, user):
    stored_photo(user, status=PhotoStatus.FAILED, error="Unreadable image: broken")
    stored_photo(user, status=PhotoStatus.WAITING)
    response = staff_client.get("/admin/recognition/photo/")
    body = response.content.decode()
    counts = {row["status"]: row["count"] for row in response.context["status_counts"]}
    assert counts == {"waiting": 1, "queued": 0, "processing": 0, "done": 1, "failed": 1}
    assert f"/admin/recognition/photo/{processed.pk}/thumbnail/" in body
    assert "Unreadable image: broken" in body
    assert "alice" in body
    [row] = [r for r in response.context["cl"].result_list if r.pk == processed.pk]
    assert row.faces_total == 1


def test_photo_list_filters_and_search(staff_client, processed, user, other_user):
    stored_photo(other_user, "nofaces/cat.png", status=PhotoStatus.FAILED)
    by_status = staff_client.get("/admin/recognition/photo/?status__exact=failed").context["cl"].result_list
    assert [p.original_name for p in by_status] == ["cat.png"]
    by_owner = staff_client.get(f"/admin/recognition/photo/?owner__id__exact={user.pk}").context["cl"].result_list
    assert [p.pk for p in by_owner] == [processed.pk]
    found = staff_client.get("/admin/recognition/photo/?q=congress").context["cl"].result_list
    assert [p.pk for p in found] == [processed.pk]


def test_thumbnail_is_served_to_staff_only(staff_client, client, user, processed):
    url = f"/admin/recognition/photo/{processed.pk}/thumbnail/"
    response = staff_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"
    client.force_login(user)
    assert client.get(url).status_code == 302


def test_reprocess_selected_queues_photos_and_skips_busy_ones(staff_client, user, redis_server):
    done = stored_photo(user, status=PhotoStatus.DONE)
    busy = stored_photo(user, status=PhotoStatus.PROCESSING)
    response = staff_client.post(
        "/admin/recognition/photo/",
        {"action": "reprocess_selected", "_selected_action": [done.pk, busy.pk]},
        follow=True,
    )
    assert "Queued 1 photos for processing; 1 skipped" in response.content.decode()
    assert Photo.objects.get(pk=done.pk).status == PhotoStatus.QUEUED
    assert get_queue(GALLERY).get_job_ids() == [photo_job_id(done.pk)]


def test_rematch_selected_finds_a_person_added_later(staff_client, user, run_jobs):
    photo = stored_photo(user, "people/obama/congress_address_2009.jpg")
    get_queue(BULK).enqueue("jobs.process_photo.process_photo", photo.pk)
    run_jobs()
    face = photo.faces.get()
    assert face.person is None
    obama = Person.objects.create(owner=user, name="Obama")
    from jobs.encode_reference import encode_reference

    encode_reference(obama.references.create(image=upload_of("people/obama/portrait_2012.jpg")).pk)
    get_queue(GALLERY).empty()  # the re-match that encoding queued: the action must do it alone
    staff_client.post("/admin/recognition/photo/", {"action": "rematch_selected", "_selected_action": [photo.pk]})
    run_jobs()
    assert Face.objects.get(pk=face.pk).person == obama, "the stored face was matched, not detected again"


def test_pause_and_resume_from_the_queues_page(staff_client, redis_server):
    staff_client.post("/admin/queues/low/pause/")
    assert paused_queues() == {"low"}
    assert b"Resume" in staff_client.get("/admin/queues/").content
    staff_client.post("/admin/queues/low/resume/")
    assert paused_queues() == set()
    assert staff_client.post("/admin/queues/nope/pause/").status_code == 404
