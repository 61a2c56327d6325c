"""What a user decides about their gallery: naming faces, rejecting matches, and editing known people.

Every operation that changes who is known, or what they look like, re-matches the owner's stored
face encodings afterwards (jobs.rematch, no detection). Decisions the user made on a face
(Face.named_by_user, Face.rejected_people) are honoured by Photo.replace_faces and Photo.apply_matches,
so neither reprocessing nor a gallery change undoes them.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from jobs.enqueue import UPLOADS, admit_waiting, enqueue_photo, enqueue_rematch
from recognition import renditions, storage
from recognition.models import Alert, Face, Person, Photo, ReferencePhoto, ReferenceStatus, reference_path


class PicturesNotReady(Exception):
    """The photo's stored renditions are not made yet (a photo processed before they were)."""


def face_picture(face: Face, side: int = renditions.REFERENCE_SIDE) -> bytes:
    """A JPEG of a face from the stored web-sized image (never the original), or its stored crop."""
    photo = face.photo
    if photo.web_image:
        image = renditions.open_rendition(storage.read_bytes(photo.web_image.name))
        return renditions.face_jpeg(image, face.box, photo.width or image.width, side)
    if face.crop:
        return storage.read_bytes(face.crop.name)
    raise PicturesNotReady(f"the pictures of {photo} are not made yet")


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
    that was matched, with no second detection that could miss a small face. PicturesNotReady (nothing
    changed) when the photo has no stored renditions yet.
    """
    picture = face_picture(face)
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
    # A crop of the face is its picture and its thumbnail alike.
    reference.image = reference.thumbnail = storage.save(reference_path(reference, "face.jpg"), picture)
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
    names = {name for pair in references.values_list("image", "thumbnail") for name in pair if name}
    references.delete()
    storage.delete_on_commit(sorted(names))


@transaction.atomic
def delete_photo(photo: Photo) -> None:
    """Delete a photo, its faces and alerts, and its files; references named from its faces stay."""
    names = photo.file_names()
    owner_id = photo.owner_id
    photo.delete()
    storage.delete_on_commit(names)
    # A queued photo gone frees a place in the owner's fair share of the workers.
    transaction.on_commit(lambda: admit_waiting(owner_id), robust=True)


def reprocess_photo(photo: Photo) -> None:
    enqueue_photo(photo, UPLOADS)


def photos_of(person: Person):
    """Every photo a person was found in, newest first."""
    return Photo.objects.filter(Q(faces__person=person), owner_id=person.owner_id).distinct()
