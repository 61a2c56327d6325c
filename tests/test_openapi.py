"""The OpenAPI schema (/api/schema/) is valid, and every status code it documents is checked against the view.

Generic over the schema: each operation is called the ways that should give each code it documents (no
credentials, an unknown id, a session without CSRF, an invalid body, a valid one, a throttle, a body too
large, Redis down), every answer must be documented, every documented code must be seen, and each body
must match its documented schema (no undocumented fields either). A new endpoint is covered as it is.
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from unittest import mock

import jsonschema
import pytest
from django.core.files.storage import FileSystemStorage
from django.test import Client
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from recognition.models import Alert, Face, FaceGroup, Person, PhotoStatus, ReferencePhoto, ReferenceStatus
from tests.conftest import face_file, stored_photo, token_client, upload_of

pytestmark = pytest.mark.django_db

IMAGES = iter(f"portraits/{path.name}" for path in sorted(face_file("portraits").glob("*.jpg"))[20:60])
UNKNOWN_ID = 999_999


@pytest.fixture
def schema(staff_user) -> dict:
    response = token_client(staff_user).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def world(staff_user) -> None:
    """One of everything, owned by the staff user who calls the API."""
    photo = stored_photo(staff_user, status=PhotoStatus.DONE, width=100, height=100)
    person = Person.objects.create(owner=staff_user, name="Obama")
    face = Face.objects.create(photo=photo, top=1, right=9, bottom=9, left=1, encoding=bytes(512), person=person)
    Alert.objects.create(owner=staff_user, photo=photo, face=face, person=person, distance=0.4)
    reference = upload_of("people/obama/senate.jpg")
    ReferencePhoto.objects.create(person=person, image=reference, status=ReferenceStatus.DONE)
    # Groups of unknown faces: one for each call that hides, merges, names or takes faces out of one.
    for size in (6, 5, 4, 3):
        group = FaceGroup.objects.create(owner=staff_user)
        for k in range(size):
            Face.objects.create(photo=photo, top=1, right=9, bottom=9, left=k, encoding=bytes(512), group=group)


def other_group(staff_user, object_id: int) -> int:
    return FaceGroup.objects.filter(owner=staff_user).exclude(pk=object_id).first().pk


# Bodies that are valid for operations whose fields name other objects (the generic body says 1 for ids).
VALID_BODIES = {
    ("/api/groups/{id}/merge/", "post"): lambda staff_user, object_id: {"into": other_group(staff_user, object_id)},
    ("/api/groups/{id}/name/", "post"): lambda staff_user, object_id: {"name": "Probe"},
    ("/api/groups/{id}/remove/", "post"): lambda staff_user, object_id: {
        "faces": [FaceGroup.objects.get(pk=object_id).faces.first().pk]
    },
}


def test_the_schema_is_valid_openapi_3(schema):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    expected = {"/api/photos/", "/api/photos/{id}/", "/api/people/{id}/references/", "/api/alerts/", "/api/queues/"}
    assert expected <= set(schema["paths"])


def test_the_docs_are_served_without_a_cdn(staff_client):
    page = staff_client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and "/api/schema/" in html
    assert "cdn" not in html.lower() and "https://" not in html
    assert staff_client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200


def test_the_schema_and_docs_need_a_user(client):
    assert client.get("/api/schema/").status_code in (401, 403)
    assert client.get("/api/docs/").status_code in (401, 403)


def json_schema(schema: dict, components: dict) -> dict:
    """An OpenAPI 3.0 schema as JSON Schema: references inlined, `nullable` as a null type, objects closed."""
    if "$ref" in schema:
        return json_schema(components[schema["$ref"].rsplit("/", 1)[1]], components)
    result = {}
    for key, value in schema.items():
        if key == "properties":
            result[key] = {name: json_schema(sub, components) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            result[key] = json_schema(value, components)
        elif key in ("allOf", "anyOf", "oneOf"):
            result[key] = [json_schema(sub, components) for sub in value]
        elif key not in ("nullable", "readOnly", "writeOnly", "example", "description"):
            result[key] = copy.deepcopy(value)
    if "properties" in result and "additionalProperties" not in result and "allOf" not in schema:
        result["additionalProperties"] = False  # a field the schema does not name is a documentation bug
    if schema.get("nullable"):
        result = {"anyOf": [result, {"type": "null"}]}
    return result


class Probe:
    """Calls one operation in the ways that give each code, checking each answer against the schema."""

    def __init__(self, schema: dict, path: str, method: str, staff_user, other_user) -> None:
        self.schema, self.path, self.method = schema, path, method
        self.operation = schema["paths"][path][method]
        self.documented = set(self.operation["responses"])
        self.seen: set[str] = set()
        self.staff, self.other = staff_user, other_user
        body = self.operation.get("requestBody", {}).get("content", {})
        self.multipart = "multipart/form-data" in body
        media = body.get("multipart/form-data") or body.get("application/json")
        self.body_schema = json_schema(media["schema"], schema["components"]["schemas"]) if media else None

    def url(self, object_id: int | None = None) -> str:
        if "{" not in self.path:
            return self.path
        return self.path.split("{")[0] + f"{object_id}/" + self.path.split("}/", 1)[1]

    def existing_id(self, client: APIClient) -> int | None:
        listed = client.get(self.path.split("{")[0]).json()
        items = listed["results"] if isinstance(listed, dict) else listed
        return items[0]["id"] if items else None

    def body(self, valid: bool = True, object_id: int | None = None) -> dict:
        if valid and (self.path, self.method) in VALID_BODIES and object_id is not None:
            return VALID_BODIES[(self.path, self.method)](self.staff, object_id)
        values = {}
        for name, field in (self.body_schema or {}).get("properties", {}).items():
            if field.get("format") == "binary":
                values[name] = upload_of(next(IMAGES))
            elif field.get("type") == "string":
                values[name] = "Probe" if valid else ""
            elif field.get("type") == "integer":
                values[name] = 1 if valid else "not a number"
        if not valid and self.multipart:
            values = {name: _not_an_image() for name in values}
        return values

    def call(self, client, object_id: int | None = None, data=None, **extra):
        kwargs = {"format": "multipart" if self.multipart else "json"} if isinstance(client, APIClient) else {}
        if data is not None:
            kwargs["data"] = data
        response = getattr(client, self.method)(self.url(object_id), **kwargs, **extra)
        code = str(response.status_code)
        assert code in self.documented, f"{self.method.upper()} {self.path} answered {code}, not documented"
        self.seen.add(code)
        self.check_body(code, response)
        return response

    def check_body(self, code: str, response) -> None:
        content = self.operation["responses"][code].get("content", {}).get("application/json")
        if content is None:
            assert not response.content, f"{self.method.upper()} {self.path} {code} has an undocumented body"
            return
        try:
            jsonschema.validate(response.json(), json_schema(content["schema"], self.schema["components"]["schemas"]))
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"{self.method.upper()} {self.path} {code}: {exc.message}") from None


def _not_an_image():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("notes.txt", b"this is not an image", content_type="text/plain")


def refuse(throttle: SimpleRateThrottle, request, view) -> bool:
    """Every throttle says no, as past its rate."""
    throttle.history, throttle.now = [], time.time()
    return False


def operations(schema: dict) -> list[tuple[str, str]]:
    found = [(path, method) for path, item in schema["paths"].items() for method in item if method != "parameters"]
    # Deleting comes last: the other calls need the objects.
    return sorted(found, key=lambda op: (op[1] == "delete", op[0], op[1]))


# Transactional: an upload refused mid-save (storage down) must not leave the test's transaction broken.
@pytest.mark.django_db(transaction=True)
def test_every_documented_status_code_against_the_views(schema, world, staff_user, other_user, redis_server, settings):
    staff = APIClient()
    staff.force_authenticate(staff_user)
    missing = defaultdict(set)
    for path, method in operations(schema):
        probe = Probe(schema, path, method, staff_user, other_user)
        has_id = "{" in path
        object_id = probe.existing_id(staff) if has_id else None
        probe.call(APIClient(), object_id or UNKNOWN_ID, data=probe.body() if probe.body_schema else None)
        if has_id:
            probe.call(staff, UNKNOWN_ID, data=probe.body() if probe.body_schema else None)
        if "403" in probe.documented:
            if method == "get":
                probe.call(token_client(other_user), object_id)
            else:
                session = Client(enforce_csrf_checks=True)
                session.force_login(staff_user)
                probe.call(session, object_id)
        if "400" in probe.documented:
            probe.call(staff, object_id, data=probe.body(valid=False))
        if "413" in probe.documented:
            probe.call(staff, object_id, data=probe.body(), CONTENT_LENGTH=str(10**10))
        if "429" in probe.documented:
            with mock.patch.object(SimpleRateThrottle, "allow_request", refuse):
                assert probe.call(staff, object_id, data=probe.body()).has_header("Retry-After")
        if "503" in probe.documented:  # what the site depends on is down: Redis, and the media storage
            saved = settings.RQ_QUEUES
            settings.RQ_QUEUES = {name: {"URL": "redis://127.0.0.1:1/0"} for name in saved}
            with mock.patch.object(FileSystemStorage, "_save", side_effect=ConnectionError("storage is down")):
                probe.call(staff, object_id, data=probe.body() if probe.body_schema else None)
            settings.RQ_QUEUES = saved
        if object_id is not None or not has_id:
            data = probe.body(object_id=object_id) if probe.body_schema else None
            first = probe.call(staff, object_id, data=data)
            assert first.status_code < 300
            if method == "post" and {"200", "202"} <= probe.documented and probe.multipart:
                again = copy.copy(data)
                for value in again.values():
                    value.seek(0)
                assert probe.call(staff, object_id, data=again).status_code == 200, "the same file again"
        if probe.documented - probe.seen:
            missing[f"{method.upper()} {path}"] = probe.documented - probe.seen
    assert not missing, f"documented but never answered: {dict(missing)}"
