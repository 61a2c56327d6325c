"""The JSON API (Django REST framework): photos, people and their references, alerts."""

from __future__ import annotations

import logging
import math

from django.db.models import Count
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.enqueue import UPLOADS, enqueue_photo, enqueue_reference
from photosite.openapi import error
from recognition import curation
from recognition.models import Alert, Face, Person, Photo, PhotoStatus, ReferencePhoto
from recognition.uploads import UploadRejected

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


def rejected(exc: UploadRejected) -> Response:
    headers = {"Retry-After": str(math.ceil(exc.retry_after))} if exc.retry_after else None
    return Response({"error": exc.message}, status=exc.status, headers=headers)


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


class UploadSerializer(serializers.Serializer):
    """A multipart upload: the photo in the field `image`."""

    image = serializers.FileField(help_text="JPEG, PNG, GIF, WebP, BMP, TIFF or HEIC, at most PHOTO_MAX_BYTES")


class UploadAnswerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=PhotoStatus.choices)
    url = serializers.URLField()
    duplicate = serializers.BooleanField(help_text="true: this file was uploaded before; this is its photo")
    message = serializers.CharField(required=False, help_text="Why the photo waits, or that it is a duplicate")


class PhotoStateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=PhotoStatus.choices)


class ReferenceAnswerSerializer(ReferenceSerializer):
    message = serializers.CharField(required=False, help_text="Set when the encoding waits for the job queue")

    class Meta(ReferenceSerializer.Meta):
        fields = [*ReferenceSerializer.Meta.fields, "message"]


class SeenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    seen = serializers.BooleanField()


TOO_LARGE = error("The file is larger than PHOTO_MAX_BYTES (refused from Content-Length, before the body)")
NOT_AN_IMAGE = error("Not an image, an empty file, or no file in `image`")
STORAGE_DOWN = error("Media storage is unavailable; nothing was stored. Try again after Retry-After seconds")


def _fake(view) -> bool:
    """The schema generator calls get_queryset without a user."""
    return getattr(view, "swagger_fake_view", False)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("status", enum=PhotoStatus.values, description="only photos with this status")]
    ),
    create=extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={
            202: OpenApiResponse(UploadAnswerSerializer, description="Stored and queued (or waiting: see message)"),
            200: OpenApiResponse(UploadAnswerSerializer, description="A file you uploaded before: its photo"),
            400: NOT_AN_IMAGE,
            413: TOO_LARGE,
            503: STORAGE_DOWN,
        },
    ),
    reprocess=extend_schema(request=None, responses={202: PhotoStateSerializer}),
)
class PhotoViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PhotoSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        if _fake(self):
            return Photo.objects.none()
        photos = Photo.objects.filter(owner=self.request.user).prefetch_related("faces__person")
        wanted = self.request.query_params.get("status")
        return photos.filter(status=wanted) if wanted else photos

    def create(self, request: Request, *args, **kwargs) -> Response:
        try:
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


@extend_schema_view(
    references=extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={202: ReferenceAnswerSerializer, 400: NOT_AN_IMAGE, 413: TOO_LARGE, 503: STORAGE_DOWN},
    ),
)
class PersonViewSet(viewsets.ModelViewSet):
    serializer_class = PersonSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        if _fake(self):
            return Person.objects.none()
        people = Person.objects.filter(owner=self.request.user).prefetch_related("references")
        return people.annotate(faces_total=Count("faces")).order_by("name", "id")

    def perform_create(self, serializer) -> None:
        serializer.save(owner=self.request.user)

    def perform_destroy(self, person: Person) -> None:
        curation.delete_person(person)

    @action(detail=True, methods=["post"])
    def references(self, request: Request, pk: str, **kwargs) -> Response:
        person = get_object_or_404(self.get_queryset(), pk=pk)
        try:
            reference = person.add_reference(request.FILES.get("image"))
        except UploadRejected as exc:
            return rejected(exc)
        enqueue_reference(reference.pk)
        reference.refresh_from_db()
        body = ReferenceSerializer(reference).data
        if reference.error:
            body["message"] = reference.error
        return Response(body, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("unseen", bool, description="only alerts not yet seen")]),
    seen=extend_schema(request=None, responses={200: SeenSerializer}),
)
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AlertSerializer

    def get_queryset(self):
        if _fake(self):
            return Alert.objects.none()
        alerts = Alert.objects.filter(owner=self.request.user).select_related("person")
        if self.request.query_params.get("unseen"):
            alerts = alerts.filter(seen=False)
        return alerts

    @action(detail=True, methods=["post"])
    def seen(self, request: Request, pk: str, **kwargs) -> Response:
        alert = self.get_object()
        Alert.objects.filter(pk=alert.pk).update(seen=True)
        return Response({"id": alert.pk, "seen": True})
