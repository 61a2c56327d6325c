"""The gallery pages: thin views over recognition.curation and the models.

Every object is looked up with owner=request.user, so another user's photo, person, alert or media
answers 404. Media is served only from here (there is no MEDIA_URL).
"""

from __future__ import annotations

import mimetypes

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from jobs.enqueue import UPLOADS, enqueue_photo, enqueue_renditions
from recognition import curation, grouping, storage
from recognition.downloads import zip_of
from recognition.filters import BadFilter, PhotoFilter, is_id
from recognition.forms import (
    MergeForm,
    MergeGroupForm,
    NameFaceForm,
    PersonForm,
    ReferenceForm,
    RenameForm,
    SignInForm,
    SignupForm,
)  # fmt: skip
from recognition.models import (
    Face,
    FaceGroup,
    Person,
    Photo,
    PhotoStatus,
    ReferencePhoto,
    ReferenceStatus,
    storage_used,
)
from recognition.uploads import UploadRejected

PHOTOS_PER_PAGE = 24
GROUPS_PER_PAGE = 24
GROUP_FACES_PER_PAGE = 60
STATUS_MAX_IDS = 200
MEDIA_MAX_AGE = 24 * 3600


def page_of(request: HttpRequest, items, per_page: int) -> Page:
    return Paginator(items, per_page).get_page(request.GET.get("page"))


# Accounts


class SignInView(auth_views.LoginView):
    redirect_authenticated_user = True
    form_class = SignInForm

    def get_context_data(self, **kwargs) -> dict:
        return super().get_context_data(allow_signup=settings.ALLOW_SIGNUP, **kwargs)


def signup(request: HttpRequest) -> HttpResponse:
    """Self sign-up, only where settings.ALLOW_SIGNUP is on; staff make accounts otherwise."""
    if not settings.ALLOW_SIGNUP:
        raise Http404("Sign-up is closed")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="recognition.signin.RateLimitedBackend")
        return redirect("gallery")
    return render(request, "registration/signup.html", {"form": form})


# Gallery and photos


def photo_card(photo: Photo, references_pending: bool = False) -> dict:
    """What a gallery card shows, as JSON for the live updates ("matching": its names may still change)."""
    return {
        "id": photo.pk,
        "status": photo.status,
        "matching": photo.is_matching(references_pending),
        "error": photo.error,
        "names": photo.people_names(),
        "thumbnail": reverse("photo-thumbnail", args=[photo.pk]) if photo.thumbnail else None,
        "url": photo.get_absolute_url(),
        "name": str(photo),
    }


@login_required
def gallery(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # Without JavaScript the picker posts every file here at once; the page's script sends each
        # file on its own request to the API instead, with a progress bar.
        upload_files(request, request.FILES.getlist("images"))
        return redirect("gallery")
    photos = Photo.objects.filter(owner=request.user).prefetch_related("faces__person")
    try:
        filters = PhotoFilter.from_query(request.GET, request.user)
        filter_error = ""
    except BadFilter as exc:
        filters, filter_error = PhotoFilter(), str(exc)
    page = page_of(request, filters.apply(photos), PHOTOS_PER_PAGE)
    pending = ReferencePhoto.encoding_pending(request.user)
    for photo in page:
        photo.matching = photo.is_matching(pending)
    context = {
        "page": page,
        "page_range": page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
        "query": filters.query(),
        "filters": filters,
        "filter_error": filter_error,
        "everyone": Person.objects.filter(owner=request.user).order_by("name", "id"),
        "statuses": PhotoStatus.choices,
        "per_page": PHOTOS_PER_PAGE,
        "max_bytes": settings.PHOTO_MAX_BYTES,
    }
    if settings.USER_QUOTA_BYTES:
        used = storage_used(request.user)
        context["storage"] = {"used": used, "quota": settings.USER_QUOTA_BYTES,
                              "percent": min(100, round(100 * used / settings.USER_QUOTA_BYTES))}  # fmt: skip
    return render(request, "recognition/gallery.html", context, status=400 if filter_error else 200)


def upload_files(request: HttpRequest, files: list) -> None:
    if not files:
        messages.error(request, "Choose one or more photos to upload.")
    for upload in files:
        try:
            photo, duplicate = Photo.objects.from_upload(request.user, upload)
        except UploadRejected as exc:
            messages.error(request, f"{upload.name}: {exc.message}")
            continue
        if duplicate:
            messages.info(request, f"{upload.name}: already uploaded.")
        else:
            enqueue_photo(photo, UPLOADS)
            messages.success(request, f"{upload.name}: uploaded.")


@require_GET
@login_required
def photo_status(request: HttpRequest) -> JsonResponse:
    """Cards' live status: /photos/status/?ids=1,2,3 (the user's own photos only); bad ids are 400."""
    try:
        ids = photo_ids(request.GET.get("ids", ""))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    photos = Photo.objects.filter(owner=request.user, pk__in=ids).prefetch_related("faces__person")
    pending = ReferencePhoto.encoding_pending(request.user)
    return JsonResponse({"photos": [photo_card(photo, pending) for photo in photos]})


def photo_ids(text: str) -> list[int]:
    """Comma-separated photo ids, each a whole number a database column can hold; the first STATUS_MAX_IDS."""
    parts = [part.strip() for part in text.split(",") if part.strip()][:STATUS_MAX_IDS]
    if not all(is_id(part) for part in parts):
        raise ValueError("ids: photo ids are whole numbers from 1, separated by commas")
    return [int(part) for part in parts]


def face_boxes(photo: Photo, faces: list[Face]) -> list[dict]:
    """Each face with its box in percent of the photo, for divs drawn over the image at any size."""
    width, height = photo.width or 1, photo.height or 1
    return [
        {
            "face": face,
            "number": number,
            "left": 100 * face.left / width,
            "top": 100 * face.top / height,
            "width": 100 * (face.right - face.left) / width,
            "height": 100 * (face.bottom - face.top) / height,
        }
        for number, face in enumerate(faces, start=1)
    ]


@login_required
def photo_detail(request: HttpRequest, pk: int) -> HttpResponse:
    photo = get_object_or_404(Photo, pk=pk, owner=request.user)
    faces = list(photo.faces.select_related("person").prefetch_related("rejected_people"))
    context = {
        "photo": photo,
        "matching": photo.is_matching(ReferencePhoto.encoding_pending(request.user)),
        "boxes": face_boxes(photo, faces),
        "people": Person.objects.filter(owner=request.user),
    }
    return render(request, "recognition/photo.html", context)


@require_POST
@login_required
def photo_reprocess(request: HttpRequest, pk: int) -> HttpResponse:
    photo = get_object_or_404(Photo, pk=pk, owner=request.user)
    curation.reprocess_photo(photo)
    messages.success(request, "The photo is queued to be processed again; your decisions on its faces stay.")
    return redirect(photo)


BULK_MAX = 1000


@require_POST
@login_required
def photos_bulk(request: HttpRequest) -> HttpResponse:
    """One action on the photos ticked in the gallery: download (a streamed zip), reprocess or delete."""
    ids = [int(value) for value in request.POST.getlist("ids") if is_id(value)][:BULK_MAX]
    photos = Photo.objects.filter(owner=request.user, pk__in=ids)
    back = request.POST.get("next") if is_local(request.POST.get("next")) else reverse("gallery")
    action, count = request.POST.get("action"), photos.count()
    if not count:
        messages.error(request, "Select one or more photos first.")
        return redirect(back)
    what = f"{count} photo{'s' if count != 1 else ''}"
    if action == "download":
        response = StreamingHttpResponse(zip_of(photos.order_by("pk").iterator()), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="photos-{timezone.localdate():%Y-%m-%d}.zip"'
        return private(response)
    if action not in ("reprocess", "delete"):
        messages.error(request, "Choose download, reprocess or delete.")
        return redirect(back)
    if request.POST.get("confirm") != "1":  # the page's script asks in a dialog; without it, this page asks
        context = {"photos": photos, "action": action, "what": what, "back": back}
        return render(request, "recognition/bulk_confirm.html", context)
    if action == "reprocess":
        for photo in photos:
            curation.reprocess_photo(photo)
        messages.success(request, f"Queued {what} to be processed again; your decisions on their faces stay.")
    else:
        for photo in photos:
            curation.delete_photo(photo)
        messages.success(request, f"Deleted {what}.")
    return redirect(back)


@require_POST
@login_required
def photo_delete(request: HttpRequest, pk: int) -> HttpResponse:
    photo = get_object_or_404(Photo, pk=pk, owner=request.user)
    curation.delete_photo(photo)
    messages.success(request, f"Deleted {photo}.")
    return redirect("gallery")


def owned_face(request: HttpRequest, pk: int) -> Face:
    return get_object_or_404(Face.objects.select_related("photo", "person"), pk=pk, photo__owner=request.user)


@require_POST
@login_required
def face_name(request: HttpRequest, pk: int) -> HttpResponse:
    face = owned_face(request, pk)
    form = NameFaceForm(request.POST, owner=request.user)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("__all__", [])) or "Choose a person.")
        return redirect(face_url(face))
    try:
        curation.face_picture(face)  # before a new person is made for it
    except curation.PicturesNotReady:
        enqueue_renditions("photo", face.photo_id)
        messages.error(request, "This photo's pictures are being made; name the face again in a minute.")
        return redirect(face_url(face))
    except storage.StorageUnavailable:
        messages.error(request, "Photo storage is unavailable right now; try again shortly.")
        return redirect(face_url(face))
    person = form.cleaned_data["person"] or curation.create_person(request.user, form.cleaned_data["new_name"])
    curation.name_face(face, person)
    messages.success(request, f"Named {person}; this face is now one of their references.")
    return redirect(face_url(face))


@require_POST
@login_required
def face_reject(request: HttpRequest, pk: int) -> HttpResponse:
    face = owned_face(request, pk)
    person = face.person  # reject_match forgets it
    if person is not None:
        curation.reject_match(face)
        messages.success(request, f"Noted: this is not {person}. It will not be matched to them again.")
    return redirect(face_url(face))


def face_url(face: Face) -> str:
    """The photo page at this face, where focus goes back after one of its forms."""
    return f"{face.photo.get_absolute_url()}#face-{face.pk}"


@require_POST
@login_required
def face_picture(request: HttpRequest, pk: int) -> HttpResponse:
    face = owned_face(request, pk)
    if face.person is None:
        messages.error(request, "Only a face that is someone can be their picture.")
    else:
        curation.set_picture(face.person, face)
        messages.success(request, f"This face is now {face.person}'s picture.")
    return redirect(face_url(face))


# People


PEOPLE_ORDERS = {"photos": ("-photo_count", "name", "id"), "name": ("name", "id")}


@login_required
def people(request: HttpRequest) -> HttpResponse:
    form = PersonForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        return add_person(request, form)
    return render_people(request, form)


def add_person(request: HttpRequest, form: PersonForm) -> HttpResponse:
    """Create a person with their reference photo (both or neither); a name in use asks first."""
    name, upload, choice = form.cleaned_data["name"], form.cleaned_data["image"], form.cleaned_data["if_exists"]
    existing = curation.person_named(request.user, name)
    if existing is not None and choice != "new":
        if choice != "add":
            return render_people(request, form, existing=existing, photo_dropped=upload is not None)
        if upload is None:
            return redirect(existing)
        try:
            curation.add_reference(existing, upload)
        except UploadRejected as exc:
            form.add_error("image", exc.message)
            return render_people(request, form)
        messages.success(request, f"Added the photo to {existing}; encoding it now.")
        return redirect(existing)
    try:
        person = curation.create_person_with_reference(request.user, name, upload)
    except UploadRejected as exc:
        form.add_error("image", f"{exc.message} {name} was not added.")
        return render_people(request, form)
    messages.success(request, f"Added {person}." + (" Encoding their photo now." if upload else ""))
    return redirect(person)


def render_people(
    request: HttpRequest, form: PersonForm, existing: Person | None = None, photo_dropped: bool = False
) -> HttpResponse:
    order = request.GET.get("sort") if request.GET.get("sort") in PEOPLE_ORDERS else "photos"
    show_hidden = request.GET.get("hidden") == "1"
    everyone = Person.objects.filter(owner=request.user)
    listing = everyone.filter(hidden=show_hidden).listed().order_by(*PEOPLE_ORDERS[order])
    context = {
        "people": listing,
        "form": form,
        "existing": existing,
        "photo_dropped": photo_dropped,
        # For the page's script, to ask about a name in use before the photo is sent.
        "known_names": [{"name": p.name, "url": p.get_absolute_url()} for p in everyone.only("pk", "name")],
        "order": order,
        "show_hidden": show_hidden,
        "hidden_count": everyone.filter(hidden=True).count() if not show_hidden else 0,
    }
    return render(request, "recognition/people.html", context, status=200 if not form.errors else 400)


def add_references(request: HttpRequest, person: Person, files: list) -> int:
    added = 0
    for upload in files:
        try:
            curation.add_reference(person, upload)
        except UploadRejected as exc:
            messages.error(request, f"{upload.name}: {exc.message}")
            continue
        added += 1
    if added:
        messages.success(request, f"Added {added} reference photo{'s' if added > 1 else ''}; encoding it now.")
    return added


def owned_person(request: HttpRequest, pk: int) -> Person:
    return get_object_or_404(Person, pk=pk, owner=request.user)


@login_required
def person_detail(request: HttpRequest, pk: int) -> HttpResponse:
    person = owned_person(request, pk)
    photos = curation.photos_of(person).prefetch_related("faces__person")
    references = list(person.references.all())
    for reference in references:
        reference.choices = curation.reference_face_choices(reference)
    context = {
        "person": person,
        "references": references,
        "page": page_of(request, photos, PHOTOS_PER_PAGE),
        "rename_form": RenameForm(initial={"name": person.name}),
        "reference_form": ReferenceForm(),
        "merge_form": MergeForm(person=person),
        "can_merge": Person.objects.filter(owner=request.user).exclude(pk=person.pk).exists(),
    }
    return render(request, "recognition/person.html", context)


@require_POST
@login_required
def person_references(request: HttpRequest, pk: int) -> HttpResponse:
    person = owned_person(request, pk)
    files = request.FILES.getlist("image")
    if not files:
        messages.error(request, "Choose a photo that shows their face.")
    add_references(request, person, files)
    return redirect(person)


@require_POST
@login_required
def person_rename(request: HttpRequest, pk: int) -> HttpResponse:
    person = owned_person(request, pk)
    form = RenameForm(request.POST)
    if form.is_valid():
        curation.rename_person(person, form.cleaned_data["name"])
        messages.success(request, f"Renamed to {person}.")
    else:
        messages.error(request, "A name is needed (at most 200 characters).")
    return redirect(person)


@require_POST
@login_required
def person_delete(request: HttpRequest, pk: int) -> HttpResponse:
    person = owned_person(request, pk)
    curation.delete_person(person)
    messages.success(request, f"Deleted {person} and their reference photos.")
    return redirect("people")


@require_POST
@login_required
def person_merge(request: HttpRequest, pk: int) -> HttpResponse:
    person = owned_person(request, pk)
    form = MergeForm(request.POST, person=person)
    if not form.is_valid():
        messages.error(request, "Choose another of your people to merge into.")
        return redirect(person)
    target = curation.merge_people(person, form.cleaned_data["target"])
    messages.success(request, f"Merged {person} into {target}.")
    return redirect(target)


@require_POST
@login_required
def person_hide(request: HttpRequest, pk: int) -> HttpResponse:
    person = owned_person(request, pk)
    hidden = request.POST.get("hidden") == "1"
    curation.set_hidden(person, hidden)
    if hidden:
        messages.success(request, f"{person} is hidden from the people page; they are still found in photos.")
    else:
        messages.success(request, f"{person} is shown on the people page again.")
    return redirect(person)


def owned_reference(request: HttpRequest, pk: int) -> ReferencePhoto:
    return get_object_or_404(ReferencePhoto.objects.select_related("person"), pk=pk, person__owner=request.user)


@require_POST
@login_required
def reference_choose(request: HttpRequest, pk: int) -> HttpResponse:
    """The user picks their face among the faces of a group photo given as a reference."""
    reference = owned_reference(request, pk)
    try:
        other = curation.choose_reference_face(reference, int(request.POST.get("face", "")))
    except ValueError:
        messages.error(request, "That face is no longer there to choose; reload the page.")
        return redirect(reference.person)
    note = f" It was matched to {other['name']} before: they may be found less now." if other else ""
    messages.success(request, f"This face is now {reference.person}'s reference.{note}")
    return redirect(f"{reference.person.get_absolute_url()}#reference-{reference.pk}")


@require_POST
@login_required
def reference_delete(request: HttpRequest, pk: int) -> HttpResponse:
    reference = owned_reference(request, pk)
    curation.delete_reference(reference)
    messages.success(request, "Reference photo deleted.")
    return redirect(reference.person)


# Who is this? Groups of unknown faces


@login_required
def groups(request: HttpRequest) -> HttpResponse:
    hidden = request.GET.get("hidden") == "1"
    page = page_of(request, FaceGroup.objects.shown(request.user, hidden=hidden), GROUPS_PER_PAGE)
    grouping.describe(list(page.object_list), request.user.pk)
    context = {"page": page, "hidden": hidden, "min_faces": settings.FACES_GROUP_MIN_FACES}
    return render(request, "recognition/groups.html", context)


def owned_group(request: HttpRequest, pk: int) -> FaceGroup:
    return get_object_or_404(FaceGroup.objects.with_size(), pk=pk, owner=request.user)


@login_required
def group_detail(request: HttpRequest, pk: int) -> HttpResponse:
    group = owned_group(request, pk)
    grouping.describe([group], request.user.pk)
    context = {
        "group": group,
        "page": page_of(request, group.faces_largest_first().select_related("photo"), GROUP_FACES_PER_PAGE),
        "people": Person.objects.filter(owner=request.user),
        "merge_form": MergeGroupForm(group=group),
    }
    return render(request, "recognition/group.html", context)


@require_POST
@login_required
def group_name(request: HttpRequest, pk: int) -> HttpResponse:
    group = owned_group(request, pk)
    form = NameFaceForm(request.POST, owner=request.user)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("__all__", [])) or "Choose a person or type a name.")
        return redirect(group)
    person = form.cleaned_data["person"] or curation.create_person(request.user, form.cleaned_data["new_name"])
    named = curation.name_group(group, person)
    messages.success(
        request, f"Named {named} face{'' if named == 1 else 's'} {person}; looking for them in your other photos now."
    )
    return redirect(person)


@require_POST
@login_required
def group_remove(request: HttpRequest, pk: int) -> HttpResponse:
    group = owned_group(request, pk)
    ids = [int(value) for value in request.POST.getlist("faces") if is_id(value)]
    try:
        removed = group.remove_faces(ids)
    except ValueError:
        messages.error(request, "Tick the faces that are not this person.")
        return redirect(group)
    messages.success(request, f"Took {removed} face{'' if removed == 1 else 's'} out; they will not rejoin.")
    return redirect(group)


@require_POST
@login_required
def group_merge(request: HttpRequest, pk: int) -> HttpResponse:
    group = owned_group(request, pk)
    form = MergeGroupForm(request.POST, group=group)
    if not form.is_valid():
        messages.error(request, "Choose another group to merge into.")
        return redirect(group)
    target = group.merge_into(form.cleaned_data["target"])
    messages.success(request, "Merged the two groups.")
    return redirect(target)


@require_POST
@login_required
def group_hide(request: HttpRequest, pk: int) -> HttpResponse:
    group = owned_group(request, pk)
    group.hide()
    messages.success(request, "Hidden: this group will not be suggested again.")
    return redirect("groups")


# Media: only through these views, only to the owner. Every image served is a stored file: thumbnails,
# web-sized images and face crops are made by the jobs (recognition.renditions); no request decodes one.


def private(response: HttpResponse) -> HttpResponse:
    patch_cache_control(response, private=True, max_age=MEDIA_MAX_AGE)
    return response


def serve(name: str, content_type: str = "image/jpeg", filename: str | None = None) -> HttpResponse:
    """A stored file, streamed from storage; with MEDIA_REDIRECT on object storage, a redirect to a
    presigned URL that expires after MEDIA_REDIRECT_SECONDS."""
    try:
        if settings.MEDIA_REDIRECT and (url := storage.presigned_url(name, content_type, filename)):
            response = HttpResponseRedirect(url)
            patch_cache_control(response, private=True, max_age=settings.MEDIA_REDIRECT_SECONDS // 2)
            return response
        download = storage.download(name)
    except FileNotFoundError as exc:
        raise Http404("The file is missing from storage") from exc
    except storage.StorageUnavailable:
        return storage_unavailable()
    response = StreamingHttpResponse(download.chunks, content_type=content_type)
    if download.size is not None:
        response["Content-Length"] = str(download.size)
    if filename is not None:
        response["Content-Disposition"] = content_disposition_header(True, filename)
    return private(response)


def storage_unavailable() -> HttpResponse:
    response = HttpResponse("Photo storage is unavailable right now; try again shortly.", status=503)
    response["Retry-After"] = str(settings.STORAGE_RETRY_AFTER)
    return response


def not_made_yet(kind: str, object_id: int) -> Http404:
    """A picture made before jobs stored them: ask for it in the background (never here), 404 for now."""
    enqueue_renditions(kind, object_id)
    return Http404("This picture is being made; try again in a minute")


@require_GET
@login_required
def photo_original(request: HttpRequest, pk: int) -> HttpResponse:
    photo = get_object_or_404(Photo, pk=pk, owner=request.user)
    content_type = mimetypes.guess_type(photo.image.name)[0] or "application/octet-stream"
    return serve(photo.image.name, content_type, filename=photo.original_name or "photo")


@require_GET
@login_required
def photo_web(request: HttpRequest, pk: int) -> HttpResponse:
    """The photo upright (EXIF orientation applied) at web size, as the job stored it."""
    photo = get_object_or_404(Photo, pk=pk, owner=request.user)
    if not photo.web_image:
        raise not_made_yet("photo", photo.pk) if photo.status == PhotoStatus.DONE else Http404("Not processed yet")
    return serve(photo.web_image.name)


@require_GET
@login_required
def photo_thumbnail(request: HttpRequest, pk: int) -> HttpResponse:
    photo = get_object_or_404(Photo, ~Q(thumbnail=""), pk=pk, owner=request.user)
    return serve(photo.thumbnail.name)


@require_GET
@login_required
def face_image(request: HttpRequest, pk: int) -> HttpResponse:
    face = owned_face(request, pk)
    if not face.crop:
        raise not_made_yet("photo", face.photo_id)
    return serve(face.crop.name)


@require_GET
@login_required
def reference_image(request: HttpRequest, pk: int) -> HttpResponse:
    """A reference photo; with ?face=<index>, one face of it while the user chooses theirs."""
    reference = get_object_or_404(ReferencePhoto, pk=pk, person__owner=request.user)
    face = request.GET.get("face", "")
    if face:  # one face of a group photo, while the user chooses theirs: cropped from the thumbnail
        if not face.isdecimal() or int(face) not in {choice["index"] for choice in reference.faces}:
            raise Http404("No such face")
        return face_of_reference(reference, int(face))
    if not reference.thumbnail:
        if reference.status == ReferenceStatus.QUEUED:
            raise Http404("Not encoded yet")
        raise not_made_yet("reference", reference.pk)
    return serve(reference.thumbnail.name)


def face_of_reference(reference: ReferencePhoto, index: int) -> HttpResponse:
    try:
        picture = curation.reference_face_picture(reference, index)
    except curation.PicturesNotReady as exc:
        raise not_made_yet("reference", reference.pk) from exc
    except FileNotFoundError as exc:
        raise Http404("The file is missing from storage") from exc
    except storage.StorageUnavailable:
        return storage_unavailable()
    return private(HttpResponse(picture, content_type="image/jpeg"))


def is_local(url: str | None) -> bool:
    """A path on this site (for `next`): never another host, never a scheme."""
    return bool(url) and url_has_allowed_host_and_scheme(url, allowed_hosts=None) and url.startswith("/")
