"""What a user decides about their gallery: naming faces, rejecting matches, and editing known people.

Every operation that changes who is known, or what they look like, re-matches the owner's stored
face encodings afterwards (jobs.rematch, no detection). Decisions the user made on a face
(Face.named_by_user, Face.rejected_people) are honoured by Photo.replace_faces and Photo.apply_matches,
so neither reprocessing nor a gallery change undoes them.
"""

from __future__ import annotations

import io

from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import Q
from PIL import Image

from jobs.enqueue import UPLOADS, admit_waiting, enqueue_photo, enqueue_rematch
from recognition import engine
from recognition.models import Alert, Face, Person, Photo, ReferencePhoto, ReferenceStatus

# The size of the upright rendition the photo page shows, and faces are cropped from.
WEB_SIDE = 1600
FACE_MARGIN = 0.35  # of the box's size on every side, so a crop shows the head, not only the face


def jpeg_bytes(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def web_image(photo: Photo, max_side: int = WEB_SIDE) -> Image.Image:
    """The photo upright (EXIF orientation applied), no larger than max_side."""
    with photo.image.open("rb") as source:
        image, _, _ = engine.open_image(source, max_side=max_side)
    return image


def crop_face(face: Face, size: int = 200, image: Image.Image | None = None) -> Image.Image:
    """A square-ish crop around a face, no larger than size x size."""
    photo = face.photo
    image = image or web_image(photo)
    # Face boxes are in the original's oriented pixels; the rendition may be smaller.
    scale = image.width / photo.width if photo.width else 1.0
    margin_x = (face.right - face.left) * FACE_MARGIN
    margin_y = (face.bottom - face.top) * FACE_MARGIN
    crop = image.crop(
        (
            max(0, round((face.left - margin_x) * scale)),
            max(0, round((face.top - margin_y) * scale)),
            min(image.width, round((face.right + margin_x) * scale)),
            min(image.height, round((face.bottom + margin_y) * scale)),
        )
    )
    crop.thumbnail((size, size), Image.Resampling.LANCZOS)
    return crop


def _forget_alert_unless_still_found(photo: Photo, person_id: int | None) -> None:
    """Drop the alert for a person in a photo once no face of that photo is that person any more."""
    if person_id is None:
        return
    if not photo.faces.filter(person_id=person_id).exists():
        Alert.objects.filter(photo=photo, person_id=person_id).delete()


@transaction.atomic
def name_face(face: Face, person: Person) -> ReferencePhoto:
    """The user says who this face is: it sticks, and the face becomes a reference of that person.

    The reference keeps a crop of the face to show, and the face's stored encoding: the same vector
    that was matched, with no second detection that could miss a small face.
    """
    previous = face.person_id
    face.person, face.distance, face.named_by_user = person, None, True
    face.save(update_fields=["person", "distance", "named_by_user"])
    face.rejected_people.remove(person)
    # A named face is no news to the user: it raises no alert (Photo.record_alerts), and an alert
    # for whom it was matched to before goes unless another face of the photo is still them.
    _forget_alert_unless_still_found(face.photo, previous)
    reference = ReferencePhoto(
        person=person,
        original_name=f"face {face.pk} of {face.photo}"[:255],
        encoding=face.encoding,
        status=ReferenceStatus.DONE,
        source_face=face,
    )
    reference.image.save("face.jpg", ContentFile(jpeg_bytes(crop_face(face, size=400))), save=False)
    reference.save()
    enqueue_rematch(person.owner_id)
    return reference


@transaction.atomic
def reject_match(face: Face) -> None:
    """The user says this face is not the person it was matched (or named) to: never match it there again."""
    person_id = face.person_id
    if person_id is None:
        return
    face.rejected_people.add(person_id)
    # A reference made from this face was a mistake too.
    made_from_face = ReferencePhoto.objects.filter(source_face=face, person_id=person_id)
    was_reference = made_from_face.exists()
    delete_references(made_from_face)
    face.person, face.distance, face.named_by_user = None, None, False
    face.save(update_fields=["person", "distance", "named_by_user"])
    _forget_alert_unless_still_found(face.photo, person_id)
    # The face may well be somebody else; a removed reference changes the whole gallery.
    owner_id = face.photo.owner_id
    enqueue_rematch(owner_id, None if was_reference else [face.photo_id])


def create_person(owner, name: str) -> Person:
    return Person.objects.create(owner=owner, name=name.strip())


def rename_person(person: Person, name: str) -> None:
    person.name = name.strip()
    person.save(update_fields=["name"])


@transaction.atomic
def delete_person(person: Person) -> None:
    owner_id = person.owner_id
    # Faces the user named as this person go back to being matched like any other.
    person.faces.update(named_by_user=False, person=None, distance=None)
    delete_references(person.references.all())
    person.delete()
    enqueue_rematch(owner_id)


@transaction.atomic
def merge_people(source: Person, target: Person) -> Person:
    """Make two people one: target keeps its name and gets everything of source."""
    if source.owner_id != target.owner_id or source.pk == target.pk:
        raise ValueError("can only merge two different people of the same owner")
    source.references.update(person=target)
    source.faces.update(person=target)
    # A face known not to be source is not target either.
    through = Face.rejected_people.through
    for face_id in through.objects.filter(person=source).values_list("face_id", flat=True):
        through.objects.get_or_create(face_id=face_id, person=target)
    # One alert per photo and person: keep target's where both were found in the same photo.
    both = Alert.objects.filter(person=target).values("photo_id")
    Alert.objects.filter(person=source, photo_id__in=both).delete()
    Alert.objects.filter(person=source).update(person=target)
    source.delete()
    enqueue_rematch(target.owner_id)
    return target


@transaction.atomic
def delete_reference(reference: ReferencePhoto) -> None:
    owner_id = reference.person.owner_id
    delete_references(ReferencePhoto.objects.filter(pk=reference.pk))
    enqueue_rematch(owner_id)


def delete_references(references) -> None:
    """Delete reference rows, and their files once the deletion is committed."""
    names = [name for name in references.values_list("image", flat=True) if name]
    references.delete()
    _delete_files_on_commit(ReferencePhoto.image.field.storage, names)


@transaction.atomic
def delete_photo(photo: Photo) -> None:
    """Delete a photo, its faces and alerts, and its files; references named from its faces stay."""
    names = [name for name in (photo.image.name, photo.thumbnail.name) if name]
    owner_id = photo.owner_id
    photo.delete()
    _delete_files_on_commit(Photo.image.field.storage, names)
    # A queued photo gone frees a place in the owner's fair share of the workers.
    transaction.on_commit(lambda: admit_waiting(owner_id), robust=True)


def _delete_files_on_commit(storage: Storage, names: list[str]) -> None:
    def remove() -> None:
        for name in names:
            storage.delete(name)

    transaction.on_commit(remove)


def reprocess_photo(photo: Photo) -> None:
    enqueue_photo(photo, UPLOADS)


def photos_of(person: Person):
    """Every photo a person was found in, newest first."""
    return Photo.objects.filter(Q(faces__person=person), owner_id=person.owner_id).distinct()
