"""The admin for staff: photos with their status and faces, people, references, alerts."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.defaultfilters import truncatechars
from django.urls import path, reverse
from django.utils.html import format_html
from redis.exceptions import RedisError

from jobs.enqueue import GALLERY, enqueue_photos, enqueue_reference, enqueue_rematch_many
from recognition.forms import AdminSignInForm
from recognition.models import Alert, Face, FaceGroup, Person, Photo, PhotoStatus, ReferencePhoto, ReferenceStatus
from recognition.views import serve

# The admin's sign-in page is held by the same brute-force limits as the site's (recognition.signin).
admin.site.login_form = AdminSignInForm


def _link(obj, label: str | None = None) -> str:
    if obj is None:
        return "-"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or str(obj))


class FaceInline(admin.TabularInline):
    model = Face
    fields = ["top", "right", "bottom", "left", "person", "distance", "named_by_user"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ["thumb", "name", "owner", "status", "faces_count", "short_error", "attempts", "created_at"]
    list_display_links = ["thumb", "name"]
    list_filter = ["status", ("owner", admin.RelatedOnlyFieldListFilter), "created_at", "processed_at"]
    date_hierarchy = "created_at"
    search_fields = ["original_name", "owner__username", "owner__email", "sha256", "error"]
    list_select_related = ["owner"]
    list_per_page = 50
    actions = ["reprocess_selected", "rematch_selected"]
    readonly_fields = [
        "thumb_large", "owner", "stored_as", "original_name", "size_bytes", "sha256", "status", "error", "attempts",
        "width", "height", "job_id", "created_at", "updated_at", "queued_at", "started_at", "processed_at",
    ]  # fmt: skip
    fields = readonly_fields
    inlines = [FaceInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # photos come in through uploads

    def get_queryset(self, request: HttpRequest) -> QuerySet[Photo]:
        return super().get_queryset(request).annotate(faces_total=Count("faces"))

    def get_urls(self):
        thumbnail = self.admin_site.admin_view(self.thumbnail_view)
        return [path("<int:pk>/thumbnail/", thumbnail, name="recognition_photo_thumbnail"), *super().get_urls()]

    def thumbnail_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The thumbnail, for staff: media is never served directly."""
        photo = Photo.objects.filter(pk=pk).first()
        if photo is None or not photo.thumbnail or not self.has_view_permission(request, photo):
            raise Http404("No thumbnail")
        return serve(photo.thumbnail.name)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        counts = dict(Photo.objects.order_by().values_list("status").annotate(n=Count("pk")))
        status_counts = [
            {"status": value, "label": label, "count": counts.get(value, 0)} for value, label in PhotoStatus.choices
        ]
        return super().changelist_view(request, {**(extra_context or {}), "status_counts": status_counts})

    @admin.display(description="", ordering=None)
    def thumb(self, photo: Photo) -> str:
        return self._thumb(photo, 64)

    @admin.display(description="thumbnail")
    def thumb_large(self, photo: Photo) -> str:
        return self._thumb(photo, 400)

    def _thumb(self, photo: Photo, size: int) -> str:
        if not photo.thumbnail:
            return "-"
        url = reverse("admin:recognition_photo_thumbnail", args=[photo.pk])
        return format_html('<img src="{}" alt="" style="max-width:{}px;max-height:{}px">', url, size, size)

    @admin.display(description="stored as")
    def stored_as(self, photo: Photo) -> str:
        return photo.image.name

    @admin.display(description="photo", ordering="original_name")
    def name(self, photo: Photo) -> str:
        return str(photo)

    @admin.display(description="faces", ordering="faces_total")
    def faces_count(self, photo: Photo) -> int:
        return photo.faces_total

    @admin.display(description="error")
    def short_error(self, photo: Photo) -> str:
        return truncatechars(photo.error, 80)

    @admin.action(description="Reprocess selected photos (detect and match again)")
    def reprocess_selected(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        busy = [PhotoStatus.QUEUED, PhotoStatus.PROCESSING]
        ids = list(queryset.exclude(status__in=busy).order_by("pk").values_list("pk", flat=True))
        skipped = queryset.filter(status__in=busy).count()
        try:
            queued = sum(enqueue_photos(ids, queue=GALLERY))
        except RedisError as exc:
            # The rows say queued; reconcile puts them on the queue once Redis is back.
            self.message_user(request, f"The job queue is unavailable ({exc}); reconcile queues them later.",
                              messages.ERROR)  # fmt: skip
            return
        note = f"; {skipped} skipped, already queued or processing" if skipped else ""
        self.message_user(request, f"Queued {queued} photos for processing{note}.", messages.SUCCESS)

    @admin.action(description="Re-match selected photos (stored faces against the current gallery)")
    def rematch_selected(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        by_owner: dict[int, list[int]] = defaultdict(list)
        for pk, owner_id in queryset.filter(status=PhotoStatus.DONE).values_list("pk", "owner_id"):
            by_owner[owner_id].append(pk)
        try:
            enqueue_rematch_many(list(by_owner.items()), queue=GALLERY)
        except RedisError as exc:
            self.message_user(request, f"The job queue is unavailable: {exc}", messages.ERROR)
            return
        count = sum(len(ids) for ids in by_owner.values())
        self.message_user(request, f"Queued a re-match of {count} processed photos.", messages.SUCCESS)


@admin.register(Face)
class FaceAdmin(admin.ModelAdmin):
    list_display = ["__str__", "photo_link", "owner", "person", "distance", "named_by_user", "group", "box"]
    list_filter = ["named_by_user", ("person", admin.EmptyFieldListFilter), ("group", admin.EmptyFieldListFilter)]
    search_fields = ["photo__original_name", "person__name", "photo__owner__username"]
    list_select_related = ["photo__owner", "person"]
    raw_id_fields = ["photo", "person"]
    readonly_fields = ["photo", "top", "right", "bottom", "left", "distance", "group"]
    fields = ["photo", "top", "right", "bottom", "left", "person", "distance", "named_by_user", "rejected_people",
              "group"]  # fmt: skip
    filter_horizontal = ["rejected_people"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # faces come from detection

    @admin.display(description="photo", ordering="photo")
    def photo_link(self, face: Face) -> str:
        return _link(face.photo)

    @admin.display(description="owner", ordering="photo__owner")
    def owner(self, face: Face) -> str:
        return face.photo.owner.get_username()

    @admin.display(description="box (top, right, bottom, left)")
    def box(self, face: Face) -> str:
        return f"{face.top}, {face.right}, {face.bottom}, {face.left}"


class ReferenceInline(admin.TabularInline):
    model = ReferencePhoto
    fields = ["original_name", "status", "error", "created_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "references_count", "faces_count", "alerts_enabled", "created_at"]
    list_filter = [("owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    inlines = [ReferenceInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Person]:
        return (
            super()
            .get_queryset(request)
            .annotate(references_total=Count("references", distinct=True), faces_total=Count("faces", distinct=True))
        )

    @admin.display(description="references", ordering="references_total")
    def references_count(self, person: Person) -> int:
        return person.references_total

    @admin.display(description="faces found", ordering="faces_total")
    def faces_count(self, person: Person) -> int:
        return person.faces_total


@admin.register(ReferencePhoto)
class ReferencePhotoAdmin(admin.ModelAdmin):
    list_display = ["__str__", "person", "owner", "status", "short_error", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["person__name", "person__owner__username", "original_name", "error"]
    list_select_related = ["person__owner"]
    readonly_fields = ["person", "image", "original_name", "status", "error", "source_face", "created_at", "updated_at"]
    actions = ["encode_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="owner", ordering="person__owner")
    def owner(self, reference: ReferencePhoto) -> str:
        return reference.person.owner.get_username()

    @admin.display(description="error")
    def short_error(self, reference: ReferencePhoto) -> str:
        return truncatechars(reference.error, 80)

    @admin.action(description="Encode selected references again (then re-match their owners' photos)")
    def encode_selected(self, request: HttpRequest, queryset: QuerySet[ReferencePhoto]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        queryset.update(status=ReferenceStatus.QUEUED, error="")
        for pk in ids:
            enqueue_reference(pk)
        self.message_user(request, f"Queued {len(ids)} references for encoding.", messages.SUCCESS)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["__str__", "person", "photo_link", "owner", "distance", "earlier", "seen", "created_at"]
    list_filter = ["seen", "earlier", "created_at"]
    search_fields = ["person__name", "owner__username", "photo__original_name"]
    list_select_related = ["person", "photo", "owner"]
    date_hierarchy = "created_at"
    readonly_fields = ["owner", "photo", "face", "person", "distance", "earlier", "created_at"]
    fields = [*readonly_fields[:6], "seen", *readonly_fields[6:]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="photo", ordering="photo")
    def photo_link(self, alert: Alert) -> str:
        return _link(alert.photo)


@admin.register(FaceGroup)
class FaceGroupAdmin(admin.ModelAdmin):
    """Groups of unknown faces ("Who is this?"), for staff to look at; users decide about them on the site."""

    list_display = ["__str__", "owner", "size", "hidden", "kept", "created_at", "updated_at"]
    list_filter = ["hidden", "kept", ("owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["owner__username"]
    list_select_related = ["owner"]
    fields = readonly_fields = ["owner", "size", "hidden", "kept", "created_at", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # groups come from the grouping jobs

    def get_queryset(self, request: HttpRequest) -> QuerySet[FaceGroup]:
        return super().get_queryset(request).with_size()

    @admin.display(description="faces that match nobody", ordering="size")
    def size(self, group: FaceGroup) -> int:
        return group.size
