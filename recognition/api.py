"""The JSON API (Django REST framework): photos, people and their references, alerts."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.enqueue import UPLOADS, enqueue_photo, enqueue_reference
from recognition import curation, grouping
from recognition.models import Alert, Face, FaceGroup, Person, Photo, PhotoStatus, ReferencePhoto
from recognition.uploads import UploadRejected, check_content_length

log = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, with every error body carrying an "error" string."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" not in response.data:
        detail = response.data.get("detail")
        response.data["error"] = str(detail) if detail else _first_message(response.data)
    return response


def _first_message(data) -> str:
    if isinstance(data, dict):
        for key, value in data.items():
            return f"{key}: {_first_message(value)}"
    if isinstance(data, list) and data:
        return _first_message(data[0])
    return str(data)


class UploadThrottle(UserRateThrottle):
    """Uploads per user, at settings.UPLOAD_RATE_LIMIT (read on each request, so tests and admins can change it)."""

    scope = "uploads"

    def get_rate(self) -> str | None:
        return settings.UPLOAD_RATE_LIMIT or None


def rejected(exc: UploadRejected) -> Response:
    return Response({"error": exc.message}, status=exc.status)


class PersonBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Person
        fields = ["id", "name"]


class FaceSerializer(serializers.ModelSerializer):
    box = serializers.SerializerMethodField()
    person = PersonBriefSerializer(read_only=True)

    class Meta:
        model = Face
        fields = ["id", "box", "person", "distance", "named_by_user"]

    def get_box(self, face: Face) -> dict[str, int]:
        return face.box.as_dict()


class PhotoSerializer(serializers.ModelSerializer):
    faces = FaceSerializer(many=True, read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="api-photo-detail")
    people = serializers.SerializerMethodField()

    class Meta:
        model = Photo
        fields = [
            "id", "url", "status", "error", "original_name", "width", "height", "attempts",
            "created_at", "processed_at", "people", "faces",
        ]  # fmt: skip

    def get_people(self, photo: Photo) -> list[str]:
        return photo.people_names()


class ReferenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReferencePhoto
        fields = ["id", "status", "error", "original_name", "created_at"]


class PersonSerializer(serializers.ModelSerializer):
    references = ReferenceSerializer(many=True, read_only=True)
    faces_count = serializers.SerializerMethodField()

    class Meta:
        model = Person
        fields = ["id", "name", "created_at", "references", "faces_count"]

    def get_faces_count(self, person: Person) -> int:
        counted = getattr(person, "faces_total", None)  # annotated on lists: no query per person
        return person.faces.count() if counted is None else counted


class AlertSerializer(serializers.ModelSerializer):
    person = PersonBriefSerializer(read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "photo", "face", "person", "distance", "seen", "created_at", "webhook_status"]


class PhotoViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PhotoSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        photos = Photo.objects.filter(owner=self.request.user).prefetch_related("faces__person")
        wanted = self.request.query_params.get("status")
        return photos.filter(status=wanted) if wanted else photos

    def get_throttles(self):
        return [UploadThrottle()] if self.action == "create" else super().get_throttles()

    def create(self, request: Request, *args, **kwargs) -> Response:
        try:
            check_content_length(request.META)  # before the body is read
            photo, duplicate = Photo.objects.from_upload(request.user, request.FILES.get("image"))
        except UploadRejected as exc:
            return rejected(exc)
        if not duplicate:
            enqueue_photo(photo, UPLOADS)
            # Backpressure or a Redis outage may have held the photo back in the database.
            photo.refresh_from_db(fields=["status", "error"])
        body = {
            "id": photo.pk,
            "status": photo.status,
            "url": request.build_absolute_uri(f"/api/photos/{photo.pk}/"),
            "duplicate": duplicate,
        }
        if duplicate:
            body["message"] = "This file was uploaded before: this is the photo it made."
        elif photo.status == PhotoStatus.WAITING:
            body["message"] = f"Stored, not lost: {photo.error.removeprefix('waiting: ')}."
        return Response(body, status=status.HTTP_200_OK if duplicate else status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def reprocess(self, request: Request, pk: str, **kwargs) -> Response:
        photo = self.get_object()
        enqueue_photo(photo, UPLOADS)
        return Response({"id": photo.pk, "status": photo.status}, status=status.HTTP_202_ACCEPTED)


class PersonViewSet(viewsets.ModelViewSet):
    serializer_class = PersonSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        people = Person.objects.filter(owner=self.request.user).prefetch_related("references")
        return people.annotate(faces_total=Count("faces")).order_by("name", "id")

    def perform_create(self, serializer) -> None:
        serializer.save(owner=self.request.user)

    def perform_destroy(self, person: Person) -> None:
        curation.delete_person(person)

    def get_throttles(self):
        return [UploadThrottle()] if self.action == "references" else super().get_throttles()

    @action(detail=True, methods=["post"])
    def references(self, request: Request, pk: str, **kwargs) -> Response:
        person = get_object_or_404(self.get_queryset(), pk=pk)
        try:
            check_content_length(request.META)
            reference = person.add_reference(request.FILES.get("image"))
        except UploadRejected as exc:
            return rejected(exc)
        enqueue_reference(reference.pk)
        reference.refresh_from_db()
        body = ReferenceSerializer(reference).data
        if reference.error:
            body["message"] = reference.error
        return Response(body, status=status.HTTP_202_ACCEPTED)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AlertSerializer

    def get_queryset(self):
        alerts = Alert.objects.filter(owner=self.request.user).select_related("person")
        if self.request.query_params.get("unseen"):
            alerts = alerts.filter(seen=False)
        return alerts

    @action(detail=True, methods=["post"])
    def seen(self, request: Request, pk: str, **kwargs) -> Response:
        alert = self.get_object()
        Alert.objects.filter(pk=alert.pk).update(seen=True)
        return Response({"id": alert.pk, "seen": True})


class GroupFaceSerializer(serializers.ModelSerializer):
    box = serializers.SerializerMethodField()

    class Meta:
        model = Face
        fields = ["id", "photo", "box"]

    def get_box(self, face: Face) -> dict[str, int]:
        return face.box.as_dict()


def group_body(group: FaceGroup, faces: list[Face] | None = None) -> dict:
    """A group as the API gives it: faces are its sample (grouping.describe) unless given."""
    suggestion = None
    if group.suggestion is not None:
        person, distance = group.suggestion
        suggestion = {"person": {"id": person.pk, "name": person.name}, "distance": distance}
    return {
        "id": group.pk,
        "size": group.size,
        "hidden": group.hidden,
        "faces": GroupFaceSerializer(group.sample if faces is None else faces, many=True).data,
        "suggestion": suggestion,
    }


class BadRequest(Exception):
    """A request the API answers with 400 {"error": message}, having changed nothing."""


def _bad(message: str) -> Response:
    return Response({"error": message}, status=status.HTTP_400_BAD_REQUEST)


class GroupViewSet(viewsets.GenericViewSet):
    """Unknown faces grouped into people to name: list, one group, and what the user decides about it."""

    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self):
        if self.action == "list":
            return FaceGroup.objects.shown(self.request.user, hidden=self.request.query_params.get("hidden") == "1")
        return FaceGroup.objects.filter(owner=self.request.user).with_size()

    def list(self, request: Request, *args, **kwargs) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        groups = grouping.describe(list(page), request.user.pk)
        return self.get_paginated_response([group_body(group) for group in groups])

    def retrieve(self, request: Request, pk: str, **kwargs) -> Response:
        group = grouping.describe([self.get_object()], request.user.pk)[0]
        return Response(group_body(group, faces=list(group.faces_largest_first())))

    # Not a method called "name": DRF sets a view's name attribute from its initkwargs.
    @action(detail=True, methods=["post"], url_path="name", url_name="name")
    def name_group(self, request: Request, pk: str, **kwargs) -> Response:
        group = self.get_object()
        try:
            person = self._person_from(request)
        except BadRequest as exc:
            return _bad(str(exc))
        with transaction.atomic():
            if person.pk is None:
                person.save()
            named = curation.name_group(group, person)
        return Response({"person": {"id": person.pk, "name": person.name}, "faces_named": named})

    def _person_from(self, request: Request) -> Person:
        """An existing person of the user ({"person": id}) or a new, unsaved one ({"name": ...})."""
        data = request.data
        if ("person" in data) == ("name" in data):
            raise BadRequest('Give either "name" (a new person) or "person" (the id of one of your people).')
        if "person" in data:
            person = Person.objects.filter(owner=request.user, pk=_as_int(data["person"])).first()
            if person is None:
                raise BadRequest("No such person among yours.")
            return person
        name = data["name"].strip() if isinstance(data["name"], str) else ""
        if not name:
            raise BadRequest("A name is needed.")
        if len(name) > Person._meta.get_field("name").max_length:
            raise BadRequest("The name is too long (at most 200 characters).")
        return Person(owner=request.user, name=name)

    @action(detail=True, methods=["post"])
    def remove(self, request: Request, pk: str, **kwargs) -> Response:
        group = self.get_object()
        ids = request.data.get("faces")
        if not isinstance(ids, list) or not ids or not all(_as_int(face) is not None for face in ids):
            return _bad('"faces" must be a non-empty list of face ids.')
        try:
            removed = group.remove_faces([_as_int(face) for face in ids])
        except ValueError:
            return _bad("Every face must be one of this group's faces; nothing was changed.")
        group = grouping.describe([self.get_queryset().get(pk=group.pk)], request.user.pk)[0]
        return Response({**group_body(group), "removed": removed})

    @action(detail=True, methods=["post"])
    def merge(self, request: Request, pk: str, **kwargs) -> Response:
        group = self.get_object()
        into = FaceGroup.objects.filter(owner=request.user, pk=_as_int(request.data.get("into"))).first()
        if into is None or into.pk == group.pk:
            return _bad('"into" must be the id of another of your groups.')
        group.merge_into(into)
        merged = grouping.describe([self.get_queryset().get(pk=into.pk)], request.user.pk)[0]
        return Response(group_body(merged))

    @action(detail=True, methods=["post"])
    def hide(self, request: Request, pk: str, **kwargs) -> Response:
        self.get_object().hide()
        return Response(status=status.HTTP_204_NO_CONTENT)


def _as_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value)
    return None
