"""Nobody in: every URL pattern walked as anonymous, as another user and as the owner; CSRF; media; names.

The walk reads the URL patterns at run time, so pages and endpoints added later are covered without
touching this file. Each <pk> is filled with the owner's real object of the kind the URL names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from rest_framework.authtoken.models import Token

from recognition.models import Alert, Face, FaceGroup, Person, Photo, ReferencePhoto
from tests.conftest import upload_of

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "zebulon"  # in the owner's photo name and person name: another user must never see it
PUBLIC = {"login", "logout", "signup", "health"}  # the only names an anonymous visitor may use
STAFF_ONLY_PREFIXES = ("admin/", "api/queues/", "metrics/")
WRITE_METHODS = ("post", "put", "patch", "delete")


@dataclass(frozen=True)
class Route:
    route: str  # the pattern, prefixes joined
    name: str | None
    url: str  # filled with the owner's ids
    owned: bool  # names one of the owner's objects

    @property
    def staff_only(self) -> bool:
        return self.url.lstrip("/").startswith(STAFF_ONLY_PREFIXES)

    def __str__(self) -> str:
        return f"{self.url} ({self.name or self.route})"


def walk(patterns, prefix: str = "", namespace: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}" if pattern.namespace and namespace else pattern.namespace
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner or namespace)
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


# Which model a parameter names, from the word before it in the path or from its own name.
KINDS = {
    "photo": "photo", "photos": "photo", "face": "face", "faces": "face", "person": "person", "people": "person",
    "alert": "alert", "alerts": "alert", "reference": "reference", "references": "reference",
    "referencephoto": "reference", "user": "user", "users": "user", "group": "group", "groups": "group",
    "who": "group", "facegroup": "group",
}  # fmt: skip
PARAMETER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>|\(\?P<(?P<group>\w+)>(?:[^()]|\([^()]*\))*\)\??")


def fill(route: str, ids: dict[str, int]) -> tuple[str, bool]:
    """A concrete URL for a route: path converters and regex groups replaced by the owner's ids."""
    owned = False

    def value(match: re.Match) -> str:
        nonlocal owned
        name = match["name"] or match["group"]
        before = re.findall(r"(\w+)/$", route[: match.start()].replace("^", ""))
        kind = KINDS.get(name.removesuffix("_id").removesuffix("_pk")) or KINDS.get(before[0] if before else "")
        if name == "format":
            return ".json" if match["converter"] == "drf_format_suffix" else "json"
        if name in ("queue_index", "scheduler_index", "connection_index"):
            return "0"
        if name == "app_label":
            return "recognition"
        if kind:
            owned = owned or kind != "user"
            return str(ids[kind])
        if name in ("pk", "object_id"):
            owned = True
            return str(ids["photo"])
        if name == "job_id":
            return f"photo-{ids['photo']}"
        return "x"

    url = PARAMETER.sub(value, route)
    url = url.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/").replace(".*", "x")
    return "/" + url, owned


def routes(ids: dict[str, int]) -> list[Route]:
    found = []
    for route, pattern in walk(get_resolver().url_patterns):
        url, owned = fill(route, ids)
        try:
            resolve(url)  # an earlier pattern may take the URL, which is fine: it is walked as well
        except Resolver404:
            raise AssertionError(f"{route} filled as {url} resolves to nothing") from None
        found.append(Route(route, pattern.name, url, owned))
    return found


@pytest.fixture
def owner_objects(user, api, other_user, run_jobs) -> dict[str, int]:
    """The owner's photo (processed for real), its face, a known person with a reference, an alert.

    The other user's objects come first, with ids far apart per kind, so that the owner's objects of
    each kind get different ids and a URL filled with the wrong kind cannot pass by chance.
    """
    theirs = Person.objects.create(pk=4_000_000, owner=other_user, name="Their person")
    photo = Photo.objects.create(pk=1_000_000, owner=other_user, image="photos/00/theirs.jpg", status="done")
    theirs.references.create(pk=2_000_000, image="references/00/theirs.jpg")
    Face.objects.create(pk=3_000_000, photo=photo, top=0, right=1, bottom=1, left=0, encoding=bytes(512))
    FaceGroup.objects.create(pk=5_000_000, owner=other_user)
    person = api.post("/api/people/", {"name": f"{SECRET.title()} Secretperson"}, format="json").json()
    assert api.post(f"/api/people/{person['id']}/references/", {"image": upload_of(PORTRAIT)}).status_code == 202
    photo = api.post("/api/photos/", {"image": upload_of(PROBE, name=f"{SECRET}-private.jpg")}).json()
    run_jobs()
    face = Face.objects.get(photo_id=photo["id"])
    assert face.person_id == person["id"], "the pipeline matched the face"
    ids = {
        "photo": photo["id"],
        "face": face.pk,
        "person": person["id"],
        "reference": ReferencePhoto.objects.get(person_id=person["id"]).pk,
        "alert": Alert.objects.get(photo_id=photo["id"]).pk,
        "group": FaceGroup.objects.create(owner=user).pk,
        "user": user.pk,
    }
    face.group_id = ids["group"]
    face.save(update_fields=["group"])
    assert len({ids[kind] for kind in KINDS.values() if kind != "user"}) == 6, ids
    return ids


PORTRAIT = "people/obama/portrait_2012.jpg"
PROBE = "people/obama/congress_address_2009.jpg"


def snapshot() -> dict:
    """What another user could try to change or delete."""
    return {
        "photos": sorted(Photo.objects.values_list("id", "status", "original_name")),
        "faces": sorted(Face.objects.values_list("id", "person_id", "named_by_user")),
        "people": sorted(Person.objects.values_list("id", "name")),
        "references": sorted(ReferencePhoto.objects.values_list("id", "status")),
        "alerts": sorted(Alert.objects.values_list("id", "seen")),
        "groups": sorted(FaceGroup.objects.values_list("id", "hidden", "kept")),
        "grouped": sorted(Face.objects.values_list("id", "group_id")),
    }


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and "login" in response.headers["Location"]


def refused_by_staff_check(response) -> bool:
    """The admin sends non-staff to its sign-in page; django-rq's JSON and our API answer 401 or 403."""
    return is_login_redirect(response) or response.status_code in (401, 403)


def refused_by_staff_check_status(status: int) -> bool:
    return status in (302, 401, 403, 405)


def test_the_walk_covers_every_kind_of_object(owner_objects):
    all_routes = routes(owner_objects)
    urls = {route.url for route in all_routes}
    for kind in ("photo", "face", "person", "reference", "alert", "group"):
        assert any(route.owned and f"/{owner_objects[kind]}" in route.url for route in all_routes), kind
    assert "/api/queues/" in urls and "/admin/" in urls
    assert len(all_routes) > 50


def test_anonymous_visitor_gets_nothing(owner_objects):
    client = Client()
    failures = []
    for route in routes(owner_objects):
        for method in ("get", "post"):
            response = getattr(client, method)(route.url)
            if route.name in PUBLIC:
                ok = response.status_code < 500
            elif response.status_code == 405:
                ok = True  # a view that does not take the method refuses it before it looks at the user
            else:
                ok = is_login_redirect(response) or response.status_code in (401, 403)
            if not ok or SECRET in response.content.decode(errors="replace").lower():
                failures.append(f"{method.upper()} {route}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_another_user_gets_404_for_the_owners_objects(owner_objects, other_user):
    before = snapshot()
    client = signed_in(other_user)
    failures = []
    for route in routes(owner_objects):
        if route.name in PUBLIC:
            continue  # walked by the anonymous test; a POST to logout would sign this user out
        statuses = {}
        for method in ("get", *WRITE_METHODS):
            response = getattr(client, method)(route.url)
            statuses[method] = response.status_code
            if SECRET in response.content.decode(errors="replace").lower():
                failures.append(f"{method.upper()} {route}: shows the owner's data")
        if route.staff_only:
            ok = all(refused_by_staff_check_status(status) for status in statuses.values())
        elif route.owned:
            # 404 for each method the URL takes; 405 for the others, refused before anything is looked up.
            ok = set(statuses.values()) <= {404, 405} and 404 in statuses.values()
        else:
            ok = all(status < 500 for status in statuses.values())
        if not ok:
            failures.append(f"{route}: {statuses}")
    assert not failures, "\n".join(failures)
    assert snapshot() == before, "another user changed nothing"


def test_another_user_cannot_list_or_query_the_owners_objects(owner_objects, other_user):
    client = signed_in(other_user)
    for url in ("/api/photos/", "/api/people/", "/api/alerts/", f"/photos/status/?ids={owner_objects['photo']}"):
        response = client.get(url)
        assert response.status_code == 200
        assert SECRET not in response.content.decode().lower(), url
        assert f'"id": {owner_objects["photo"]}' not in response.content.decode(), url


def test_owner_reaches_every_page_and_endpoint(owner_objects, user):
    client = signed_in(user)
    failures = []
    for route in routes(owner_objects):
        response = client.get(route.url)
        if route.name in PUBLIC:
            ok = response.status_code in (200, 302, 404, 405)  # signed in already; sign-up may be closed
        elif route.staff_only:
            ok = refused_by_staff_check(response)
        else:
            ok = response.status_code in (200, 302, 405)
        if not ok:
            failures.append(f"GET {route}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_staff_reach_the_admin_and_the_queues(owner_objects, user):
    staff = get_user_model().objects.create_user("root", "root@example.com", "a long staff password", is_staff=True)
    staff.is_superuser = True
    staff.save()
    client = signed_in(staff)
    for url in ("/admin/", "/api/queues/", f"/admin/recognition/photo/{owner_objects['photo']}/change/"):
        assert client.get(url).status_code == 200, url
    token = Token.objects.get_or_create(user=user)[0].key
    assert Client().get("/api/queues/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 403


def test_every_post_without_a_csrf_token_is_refused(owner_objects, user):
    """Session requests (pages and API alike) need the CSRF token; token-authenticated API calls do not."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    failures = [
        f"POST {route}: {status}"
        for route in routes(owner_objects)
        if (status := client.post(route.url).status_code) != 403
    ]
    assert not failures, "\n".join(failures)
    token = Token.objects.get_or_create(user=user)[0].key
    api = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token}")
    assert api.post("/api/people/", {"name": "Ann"}, content_type="application/json").status_code == 201


FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)


def test_every_form_carries_the_csrf_token(owner_objects, user):
    client = signed_in(user)
    forms = 0
    for route in routes(owner_objects):
        if route.staff_only or route.url.startswith("/api/"):
            continue
        response = client.get(route.url)
        if response.status_code != 200 or "html" not in response.headers.get("Content-Type", ""):
            continue
        for form in FORM.findall(response.content.decode()):
            if re.search(r'method=["\']?post', form, re.I):
                forms += 1
                assert "csrfmiddlewaretoken" in form, f"{route}: {form[:200]}"
    assert forms > 0


def test_media_files_are_not_served_from_their_storage_path(owner_objects, user):
    photo = Photo.objects.get(pk=owner_objects["photo"])
    client = signed_in(user)
    for name in (photo.image.name, photo.thumbnail.name):
        for url in (f"/media/{name}", f"/{name}", f"/static/{name}", f"/static/../media/{name}"):
            assert client.get(url).status_code == 404, url


def test_reference_files_get_random_names(api, redis_server):
    person = api.post("/api/people/", {"name": "Ann"}, format="json").json()
    upload = upload_of(PORTRAIT, name="../../../etc/cron.d/evil.png")
    assert api.post(f"/api/people/{person['id']}/references/", {"image": upload}).status_code == 202
    reference = ReferencePhoto.objects.get(person_id=person["id"])
    assert re.fullmatch(r"references/[0-9a-f]{2}/[0-9a-f]{32}\.png", reference.image.name)
    assert reference.original_name == "evil.png"


def test_forms_refuse_another_users_person(owner_objects, user, other_user):
    """Ids in form data are checked too: naming a face or merging into someone else's person does nothing."""
    theirs = Person.objects.get(owner=other_user)
    client = signed_in(user)
    client.post(f"/faces/{owner_objects['face']}/name/", {"person": theirs.pk})
    assert Face.objects.get(pk=owner_objects["face"]).person_id == owner_objects["person"]
    client.post(f"/people/{owner_objects['person']}/merge/", {"target": theirs.pk})
    assert Person.objects.filter(pk=owner_objects["person"], owner=user).exists()
    assert not theirs.faces.exists() and not theirs.references.filter(person__owner=user).exists()
