"""The JSON API (Django REST framework): photos, people and their references (alerts: alerts.api)."""

from __future__ import annotations

import logging
import math

from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.enqueue import UPLOADS, enqueue_photo, enqueue_reference
from photosite.openapi import error
from recognition import curation, grouping
from recognition.filters import MAX_ID, BadFilter, PhotoFilter, is_id
from recognition.models import Face, FaceGroup, Person, Photo, PhotoStatus, ReferencePhoto, ReferenceStatus
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
    person = PersonBriefSerializer(read_only=True, allow_null=True)  # null: a face that matches nobody

    class Meta:
        model = Face
        fields = ["id", "box", "person", "distance", "named_by_user"]

    def get_box(self, face: Face) -> dict[str, int]:
        return face.box.as_dict()


class PhotoSerializer(serializers.ModelSerializer):
    faces = FaceSerializer(many=True, read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="api-photo-detail")
    people = serializers.SerializerMethodField()
    taken_at_source = serializers.SerializerMethodField()

    class Meta:
        model = Photo
        fields = [
            "id", "url", "status", "error", "original_name", "width", "height", "attempts",
            "created_at", "processed_at", "taken_at", "taken_at_source", "people", "faces",
        ]  # fmt: skip

    def get_people(self, photo: Photo) -> list[str]:
        return photo.people_names()

    def get_taken_at_source(self, photo: Photo) -> str | None:
        """ "exif" (the camera's date) or "upload" (no date in the file); null while unknown."""
        return photo.taken_at_source or None


class ReferenceSerializer(serializers.ModelSerializer):
    faces = serializers.SerializerMethodField()

    class Meta:
        model = ReferencePhoto
        fields = ["id", "status", "error", "original_name", "created_at", "faces"]

    def get_faces(self, reference: ReferencePhoto) -> list[dict]:
        """With status "choose": every face found, [{"index", "box", "person"}], person being whom it
        already matches (null for nobody). Empty otherwise."""
        return curation.reference_face_choices(reference)


class ChooseFaceSerializer(serializers.Serializer):
    face = serializers.IntegerField(min_value=0)


class PersonSerializer(serializers.ModelSerializer):
    references = ReferenceSerializer(many=True, read_only=True)
    faces_count = serializers.SerializerMethodField()
    alerts = serializers.BooleanField(source="alerts_enabled", required=False)

    class Meta:
        model = Person
        fields = ["id", "name", "created_at", "references", "faces_count", "alerts"]

    def get_faces_count(self, person: Person) -> int:
        counted = getattr(person, "faces_total", None)  # annotated on lists: no query per person
        return person.faces.count() if counted is None else counted


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
        parameters=[
            OpenApiParameter("person", str, description="photos with all of these people: ids, repeated or 3,7"),
            OpenApiParameter("unknown", bool, description="only photos with a face nobody is known as"),
            OpenApiParameter("status", str, description=f"only these statuses ({', '.join(PhotoStatus.values)})"),
            OpenApiParameter("taken_after", str, description="taken on or after: YYYY-MM-DD or ISO 8601"),
            OpenApiParameter("taken_before", str, description="taken on or before: YYYY-MM-DD or ISO 8601"),
        ]
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
        if self.action != "list":
            return photos
        try:
            return PhotoFilter.from_query(self.request.query_params, self.request.user).apply(photos)
        except BadFilter as exc:
            raise ParseError(str(exc)) from exc

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

    # Left out of the schema: its test's probe fills one path parameter, this path has two. The README's
    # API table documents it (200, 400 no such face, 409 not waiting for a choice).
    @extend_schema(exclude=True)
    @action(detail=True, methods=["post"], url_path=r"references/(?P<ref_id>\d+)/choose")
    def choose(self, request: Request, pk: str, ref_id: str, **kwargs) -> Response:
        """Settle a reference in status "choose": {"face": index} is the person's face."""
        person = get_object_or_404(self.get_queryset(), pk=pk)
        reference = get_object_or_404(person.references.all(), pk=ref_id)
        serializer = ChooseFaceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            other = curation.choose_reference_face(reference, serializer.validated_data["face"])
        except ValueError:
            if reference.status != ReferenceStatus.CHOOSE:
                return Response({"error": "This reference is not waiting for a choice."}, status=409)
            return Response({"error": "This reference has no face with that index."}, status=400)
        body = ReferenceSerializer(reference).data
        if other:
            body["warning"] = f"This face was matched to {other['name']}; it is now {person.name}'s reference."
        return Response(body)


class GroupFaceSerializer(serializers.ModelSerializer):
    box = serializers.SerializerMethodField()

    class Meta:
        model = Face
        fields = ["id", "photo", "box"]

    def get_box(self, face: Face) -> dict[str, int]:
        return face.box.as_dict()


class SuggestionSerializer(serializers.Serializer):
    person = PersonBriefSerializer()
    distance = serializers.FloatField(help_text="mean distance of the group's faces to that person")


class GroupSerializer(serializers.Serializer):
    """The shape of group_body, for the schema."""

    id = serializers.IntegerField()
    size = serializers.IntegerField(help_text="faces that match nobody")
    hidden = serializers.BooleanField()
    faces = GroupFaceSerializer(many=True, help_text="up to 6 in lists, every face in one group's answer")
    suggestion = SuggestionSerializer(allow_null=True, help_text='"Looks like …?": a known person near the group')


class RemovedSerializer(GroupSerializer):
    removed = serializers.IntegerField()


class NameGroupSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, help_text="a new person's name (or give person)")
    person = serializers.IntegerField(required=False, help_text="one of your people (or give name)")


class NamedSerializer(serializers.Serializer):
    person = PersonBriefSerializer()
    faces_named = serializers.IntegerField()


class RemoveFacesSerializer(serializers.Serializer):
    faces = serializers.ListField(child=serializers.IntegerField(), help_text="ids of this group's faces")


class MergeGroupSerializer(serializers.Serializer):
    into = serializers.IntegerField(help_text="another of your groups, which gets this one's faces")


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


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("hidden", bool, description="1: the hidden groups instead")],
        responses={200: GroupSerializer(many=True)},
    ),
    retrieve=extend_schema(responses={200: GroupSerializer}),
    name_group=extend_schema(
        request=NameGroupSerializer,
        responses={200: NamedSerializer, 400: error("An empty or too long name, both or neither, or not your person")},
    ),
    remove=extend_schema(
        request=RemoveFacesSerializer,
        responses={200: RemovedSerializer, 400: error("Not a list of this group's faces; nothing was changed")},
    ),
    merge=extend_schema(
        request=MergeGroupSerializer,
        responses={200: GroupSerializer, 400: error("`into` is not another of your groups; nothing was changed")},
    ),
    hide=extend_schema(request=None, responses={204: None}),
)
class GroupViewSet(viewsets.GenericViewSet):
    """Unknown faces grouped into people to name: list, one group, and what the user decides about it."""

    parser_classes = [JSONParser]  # bodies are JSON: a list of face ids has no faithful form encoding
    serializer_class = GroupSerializer

    def get_queryset(self):
        if _fake(self):
            return FaceGroup.objects.none()
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
    """An id from a JSON body or form: None unless a whole number an id column can hold."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_ID else None
    if isinstance(value, str) and is_id(value):
        return int(value)
    return None
