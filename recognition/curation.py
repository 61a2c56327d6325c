"""What a user decides about their gallery: naming faces, rejecting matches, and editing known people.

Every operation that changes who is known, or what they look like, re-matches the owner's stored
face encodings afterwards (jobs.rematch, no detection). Decisions the user made on a face
(Face.named_by_user, Face.rejected_people) are honoured by Photo.replace_faces and Photo.apply_matches,
so neither reprocessing nor a gallery change undoes them.
"""

from __future__ import annotations

import numpy as np
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from PIL import Image

from jobs.enqueue import UPLOADS, admit_waiting, enqueue_grouping, enqueue_photo, enqueue_reference, enqueue_rematch
from recognition import engine, renditions, storage
from recognition.matching import Gallery
from recognition.models import (
    Alert,
    Face,
    FaceGroup,
    Person,
    Photo,
    ReferencePhoto,
    ReferenceStatus,
    reference_path,
)  # fmt: skip
from recognition.uploads import check_upload


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


def reference_face_picture(reference: ReferencePhoto, index: int, side: int = renditions.FACE_SIDE) -> bytes:
    """A JPEG of one face of a reference waiting for a choice, cropped from its stored thumbnail."""
    face = next(face for face in reference.faces if face["index"] == index)
    if not reference.thumbnail:
        raise PicturesNotReady(f"the thumbnail of reference {reference.pk} is not made yet")
    image = renditions.open_rendition(storage.read_bytes(reference.thumbnail.name))
    return renditions.face_jpeg(image, engine.Box(**face["box"]), face["width"], side)


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
    _mark_named(face, person)
    reference = reference_from_face(face, person, picture)
    enqueue_rematch(person.owner_id)
    return reference


def _mark_named(face: Face, person: Person) -> None:
    previous = face.person_id
    face.person, face.distance, face.named_by_user = person, None, True
    face.save(update_fields=["person", "distance", "named_by_user"])
    face.rejected_people.remove(person)
    # A named face is no news to the user: it raises no alert (Photo.record_alerts), and an alert
    # for whom it was matched to before goes unless another face of the photo is still them.
    _forget_alert_unless_still_found(face.photo, previous)


def reference_from_face(face: Face, person: Person, picture: bytes) -> ReferencePhoto:
    """A reference of person made from a face: its stored encoding, and picture (a JPEG crop of it)."""
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
    return reference


GROUP_REFERENCES = 5  # best faces of a named group that become references
GROUP_CANDIDATES = 12  # largest faces (one per photo) looked at for sharpness


@transaction.atomic
def name_group(group: FaceGroup, person: Person) -> int:
    """Name every unknown face of a group, as if one by one on the photo pages; returns how many.

    Up to GROUP_REFERENCES of its best faces (largest, sharpest, from different photos) become references,
    and the owner's photos are re-matched once: the same gallery change as naming one face, so matches it
    finds elsewhere follow the same rule (jobs.rematch). The group is then done and goes.
    """
    if group.owner_id != person.owner_id:
        raise ValueError("the group and the person must have the same owner")
    faces = list(group.unknown_faces().select_related("photo"))
    for face in faces:
        _mark_named(face, person)
    for face, picture in best_faces(faces):
        reference_from_face(face, person, picture)
    group.delete()
    enqueue_rematch(person.owner_id)
    return len(faces)


def best_faces(faces: list[Face], most: int = GROUP_REFERENCES) -> list[tuple[Face, bytes]]:
    """The largest face of each photo, the largest photos' first; of those, the sharpest, with their pictures."""
    largest: dict[int, Face] = {}
    for face in sorted(faces, key=lambda face: face.area, reverse=True):
        largest.setdefault(face.photo_id, face)
    scored = []
    for face in list(largest.values())[:GROUP_CANDIDATES]:
        try:
            picture = face_picture(face)
        except (PicturesNotReady, storage.StorageUnavailable, FileNotFoundError):
            continue  # a photo without its pictures makes no reference; its face is still named
        scored.append((sharpness(renditions.open_rendition(picture)), face, picture))
    scored.sort(key=lambda item: item[0], reverse=True)
    return [(face, picture) for _, face, picture in scored[:most]]


def sharpness(image: Image.Image) -> float:
    """Variance of the Laplacian of the grey image at a common size: higher is sharper."""
    grey = np.asarray(image.convert("L").resize((128, 128)), dtype=np.float32)
    laplacian = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(laplacian.var())


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


def person_named(owner, name: str) -> Person | None:
    """The owner's person of this name (ignoring case), if there is one."""
    return Person.objects.filter(owner=owner, name__iexact=name.strip()).order_by("id").first()


@transaction.atomic
def create_person_with_reference(owner, name: str, upload: UploadedFile | None) -> Person:
    """A new person and their first reference photo, together or not at all (UploadRejected)."""
    if upload is not None:
        check_upload(upload)  # before the person exists: a refused photo makes no one
    person = create_person(owner, name)
    if upload is not None:
        add_reference(person, upload)
    return person


def add_reference(person: Person, upload: UploadedFile | None) -> ReferencePhoto:
    """Store a reference photo and queue its encoding once committed."""
    reference = person.add_reference(upload)
    enqueue_reference(reference.pk)
    return reference


def reference_face_choices(reference: ReferencePhoto) -> list[dict]:
    """The faces of a CHOOSE reference, each with `person`: the known person (other than the reference's
    own) it already matches, so taking it can be warned about first."""
    choices = reference.face_choices()
    if not choices:
        return choices
    gallery = Gallery.for_owner(reference.person.owner_id)
    vectors = [engine.encoding_from_bytes(bytes.fromhex(face["encoding"])) for face in reference.faces]
    found = gallery.match(vectors, [[reference.person_id]] * len(vectors))
    names = dict(Person.objects.filter(pk__in=[m.person_id for m in found if m]).values_list("pk", "name"))
    for choice, match in zip(choices, found, strict=True):
        choice["person"] = {"id": match.person_id, "name": names[match.person_id]} if match else None
    return choices


@transaction.atomic
def choose_reference_face(reference: ReferencePhoto, index: int) -> dict | None:
    """Settle a CHOOSE reference with the user's pick; returns the known person the face matched, if any.

    Raises ValueError for a reference not waiting for a choice or an index it does not have."""
    ReferencePhoto.objects.select_for_update().filter(pk=reference.pk).first()
    reference.refresh_from_db()
    choices = {choice["index"]: choice for choice in reference_face_choices(reference)}
    reference.choose(index)
    enqueue_rematch(reference.person.owner_id)
    return choices[index]["person"]


def set_picture(person: Person, face: Face) -> None:
    """The face the people page shows for this person (one of their own faces)."""
    if face.person_id != person.pk:
        raise ValueError("the face is not this person")
    person.picture = face
    person.save(update_fields=["picture"])


def set_hidden(person: Person, hidden: bool) -> None:
    """Hide a person from the people page (or show them again); they stay known and matched."""
    person.hidden = hidden
    person.save(update_fields=["hidden"])


def rename_person(person: Person, name: str) -> None:
    person.name = name.strip()
    person.save(update_fields=["name"])


@transaction.atomic
def delete_person(person: Person) -> None:
    owner_id = person.owner_id
    # Faces the user named as this person go back to being matched like any other, and those left
    # unknown to being grouped.
    freed = person.faces.update(named_by_user=False, person=None, distance=None, indexed=False)
    delete_references(person.references.all())
    person.delete()
    enqueue_rematch(owner_id)
    if freed:
        enqueue_grouping(owner_id)


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
