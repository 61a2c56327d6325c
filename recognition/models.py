"""Photos, the faces found in them, the known people of each user, and the alert when one is found."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Iterable
from pathlib import PurePath

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, models, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from recognition import engine, renditions, storage
from recognition.engine import Box
from recognition.matching import Gallery
from recognition.uploads import UploadRejected, check_quota, check_rate, check_upload, clean_name


def _random_name(folder: str, filename: str) -> str:
    """A random storage name: user input never reaches a file path, only a known extension does."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in {".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff"}:
        suffix = ".img"
    key = uuid.uuid4().hex
    return f"{folder}/{key[:2]}/{key}{suffix}"


def photo_path(instance: models.Model, filename: str) -> str:
    return _random_name("photos", filename)


def thumbnail_path(instance: models.Model, filename: str) -> str:
    return _random_name("thumbs", filename)


def reference_path(instance: models.Model, filename: str) -> str:
    return _random_name("references", filename)


def web_path(instance: models.Model, filename: str) -> str:
    return _random_name("web", filename)


def face_path(instance: models.Model, filename: str) -> str:
    return _random_name("faces", filename)


# Every top folder of media, for media_check.
MEDIA_FOLDERS = ("photos", "thumbs", "web", "faces", "references")


def _savepoint_if_in_transaction():
    """Inside a caller's transaction, a savepoint: a failed insert (the unique file hash) leaves that
    transaction usable, and the file's deletion is registered outside what is rolled back. Outside one,
    nothing: a transaction would hold SQLite's write lock while the file is written to storage."""
    return transaction.atomic() if transaction.get_connection().in_atomic_block else contextlib.nullcontext()


def store_new_file(manager: models.Manager, **fields) -> models.Model:
    """Create a row with an uploaded file, or store nothing: storage down answers 503 (Retry-After), and a
    file stored for a row that then could not be saved is deleted again."""
    instance = manager.model(**fields)
    try:
        with storage.reporting_outages("storing an upload"), _savepoint_if_in_transaction():
            instance.save()
    except storage.StorageUnavailable as exc:
        raise UploadRejected(
            "Photo storage is unavailable right now; nothing was stored. Try again in a minute.",
            status=503,
            retry_after=settings.STORAGE_RETRY_AFTER,
        ) from exc
    except Exception:
        for field in instance._meta.fields:
            stored = getattr(instance, field.attname) if isinstance(field, models.FileField) else None
            if stored and stored._committed:
                storage.delete_on_commit([stored.name])
        raise
    return instance


class PhotoStatus(models.TextChoices):
    WAITING = "waiting", "waiting"  # stored, held back from the queue by backpressure or a Redis outage
    QUEUED = "queued", "queued"
    PROCESSING = "processing", "processing"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class TakenAtSource(models.TextChoices):
    EXIF = "exif", "camera"
    UPLOAD = "upload", "upload time"


UNFINISHED = (PhotoStatus.WAITING, PhotoStatus.QUEUED, PhotoStatus.PROCESSING)


def admit_upload(owner, upload: UploadedFile | None) -> str:
    """The one gate of every upload, photo or reference, whatever the way in: the owner's rate limit,
    then the file itself (size, a readable header), then the owner's storage quota. Returns its SHA-256."""
    check_rate(owner.pk)
    sha256 = check_upload(upload)
    if settings.USER_QUOTA_BYTES:
        check_quota(storage_used(owner), upload.size)
    return sha256


def storage_used(owner) -> int:
    """Bytes of the owner's stored originals: photos and reference photos."""
    photos = Photo.objects.filter(owner=owner).aggregate(total=models.Sum("size_bytes"))["total"] or 0
    references = ReferencePhoto.objects.filter(person__owner=owner).aggregate(total=models.Sum("size_bytes"))
    return photos + (references["total"] or 0)


class PhotoManager(models.Manager):
    def from_upload(self, owner, upload: UploadedFile | None) -> tuple[Photo, bool]:
        """Store an uploaded photo (checked first); the same file twice gives back the first photo.

        Two requests with the same file at once both pass the first lookup; the unique constraint on
        (owner, sha256) lets one insert, and the other answers with that photo, as a duplicate."""
        sha256 = admit_upload(owner, upload)
        existing = self.filter(owner=owner, sha256=sha256).first()
        if existing is not None:
            return existing, True
        try:
            photo = store_new_file(
                self,
                owner=owner,
                image=upload,
                original_name=clean_name(upload.name),
                size_bytes=upload.size,
                sha256=sha256,
                status=PhotoStatus.QUEUED,
                # Until the job reads the camera's date, the upload time stands in.
                taken_at=timezone.now(),
                taken_at_source=TakenAtSource.UPLOAD,
            )
        except IntegrityError:
            # Another request stored the same file a moment ago: answer with its photo (our file is deleted).
            existing = self.filter(owner=owner, sha256=sha256).first()
            if existing is None:
                raise
            return existing, True
        return photo, False


class GalleryVersion(models.Model):
    """Changes whenever what an owner's gallery is made of changes (the rows Gallery.load reads: their
    references' existence, person, status and encoding), in the transaction of the change: a process that
    cached the gallery (recognition.matching.GALLERIES) knows from this one row that its copy is stale.

    Each change draws a new random number rather than adding one, so that a number a rolled-back
    transaction drew (and a process may have seen from inside it) never comes back. No row reads as 0.
    """

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+")
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"gallery of user {self.owner_id} at {self.version}"

    @classmethod
    def current(cls, owner_id: int) -> int:
        return cls.objects.filter(owner_id=owner_id).values_list("version", flat=True).first() or 0

    @classmethod
    def bump(cls, owner_ids: Iterable[int]) -> None:
        """Mark these owners' galleries changed: one upsert, in the caller's transaction."""
        rows = [cls(owner_id=owner_id, version=secrets.randbits(63) or 1) for owner_id in set(owner_ids)]
        if rows:
            cls.objects.bulk_create(rows, update_conflicts=True, unique_fields=["owner"], update_fields=["version"])

    @classmethod
    def bump_people(cls, person_ids: Iterable[int]) -> None:
        """Mark the galleries of these people's owners changed."""
        ids, owners = sorted(set(person_ids)), set()
        for start in range(0, len(ids), 1000):  # SQLite takes at most 32,766 parameters a query
            people = Person.objects.filter(pk__in=ids[start : start + 1000])
            owners.update(people.order_by().values_list("owner_id", flat=True).distinct())
        cls.bump(owners)


class PersonQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:
        """Deleting people deletes their references: their owners' galleries change."""
        with transaction.atomic(using=self.db):
            GalleryVersion.bump(self.order_by().values_list("owner_id", flat=True).distinct())
            return super().delete()

    def listed(self) -> PersonQuerySet:
        """With what the people page shows: photo and reference counts, and the face to show."""
        best_face = (
            Face.objects.filter(person=OuterRef("pk"))
            .order_by(F("named_by_user").desc(), F("distance").asc(nulls_last=True), "id")
            .values("pk")[:1]
        )
        chosen_face = Face.objects.filter(pk=OuterRef("picture_id"), person=OuterRef("pk")).values("pk")
        # Only a reference that was encoded shows their face: a failed one (a cat) is not them.
        encoded = ReferencePhoto.objects.filter(person=OuterRef("pk"), status=ReferenceStatus.DONE)
        return self.annotate(
            photo_count=Count("faces__photo", distinct=True),
            reference_count=_references_in(ReferenceStatus.DONE),
            failed_count=_references_in(ReferenceStatus.FAILED),
            choose_count=_references_in(ReferenceStatus.CHOOSE),
            picture_face_id=Subquery(chosen_face),  # the face the user chose, while it is still them
            best_face_id=Subquery(best_face),
            reference_id=Subquery(encoded.order_by("id").values("pk")[:1]),
        )


def _references_in(status: str) -> Count:
    return Count("references", filter=Q(references__status=status), distinct=True)


class Person(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="people")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    # Hidden from the people page, still known and matched.
    hidden = models.BooleanField(default=False)
    # The face the user chose as their picture; otherwise their best match is shown.
    picture = models.ForeignKey(
        "Face", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    # Alert rules: off means no alert at all for this person; channels empty means every channel.
    alerts_enabled = models.BooleanField("alerts", default=True)
    alert_channels = models.JSONField(default=list, blank=True)

    objects = PersonQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("person", args=[self.pk])

    def delete(self, *args, **kwargs) -> tuple[int, dict[str, int]]:
        with transaction.atomic():
            GalleryVersion.bump([self.owner_id])  # their references go with them (a cascade, not our delete())
            return super().delete(*args, **kwargs)

    def add_reference(self, upload: UploadedFile | None) -> ReferencePhoto:
        """Store a reference photo (checked first); the caller queues its encoding."""
        admit_upload(self.owner, upload)
        return store_new_file(
            ReferencePhoto.objects, person=self, image=upload, original_name=clean_name(upload.name),
            size_bytes=upload.size,
        )  # fmt: skip


class ReferenceStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    CHOOSE = "choose", "choose a face"  # several faces found: the user picks theirs, nothing is guessed
    DONE = "done", "done"
    FAILED = "failed", "failed"


# What Gallery.load reads of a reference, besides its existence: writing one of these changes the gallery.
GALLERY_FIELDS = frozenset({"person", "person_id", "status", "encoding"})


class ReferencePhotoQuerySet(models.QuerySet):
    """Writes through a queryset (update, delete, bulk_create) mark their owners' galleries changed too."""

    def owner_ids(self) -> set[int]:
        return set(self.order_by().values_list("person__owner_id", flat=True).distinct())

    def update(self, **fields) -> int:
        if GALLERY_FIELDS.isdisjoint(fields):
            return super().update(**fields)
        with transaction.atomic(using=self.db):
            owners = self.owner_ids()
            count = super().update(**fields)
            GalleryVersion.bump(owners)
            new_person = fields.get("person", fields.get("person_id"))
            if isinstance(new_person, Person | int):
                GalleryVersion.bump_people([getattr(new_person, "pk", new_person)])
        return count

    update.alters_data = True

    def delete(self) -> tuple[int, dict[str, int]]:
        with transaction.atomic(using=self.db):
            GalleryVersion.bump(self.owner_ids())
            return super().delete()

    delete.alters_data = True
    delete.queryset_only = True

    def bulk_create(self, objs, *args, **kwargs) -> list:
        with transaction.atomic(using=self.db):
            created = super().bulk_create(objs, *args, **kwargs)
            GalleryVersion.bump_people(reference.person_id for reference in created)
        return created


class ReferencePhoto(models.Model):
    """A photo that shows what a known person looks like: its one face is their encoding.

    A photo with several faces waits in CHOOSE with every face in `faces` until the user picks one.
    """

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="references")
    image = models.ImageField(upload_to=reference_path, max_length=200)
    # What a person's page shows, made by the encoding job (a face named on a photo: the crop itself).
    thumbnail = models.ImageField(upload_to=reference_path, max_length=200, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    encoding = models.BinaryField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=20, choices=ReferenceStatus.choices, default=ReferenceStatus.QUEUED)
    error = models.TextField(blank=True)
    # CHOOSE: every face found, [{"index", "box", "encoding" (hex)}], until the user picks one.
    faces = models.JSONField(default=list, blank=True, editable=False)
    # Set when the reference was made by naming a face on a photo page.
    source_face = models.ForeignKey(
        "Face", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReferencePhotoQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.person} #{self.pk}"

    def save(self, *args, **kwargs) -> None:
        """A save that can change the owner's gallery marks it changed, in one transaction with the row.

        A new reference that is not encoded yet is not in the gallery: it is saved as before, outside a
        transaction (store_new_file writes its file meanwhile, and must not hold SQLite's write lock)."""
        update_fields = kwargs.get("update_fields")
        if (self._state.adding and self.status != ReferenceStatus.DONE) or (
            update_fields is not None and GALLERY_FIELDS.isdisjoint(update_fields)
        ):
            super().save(*args, **kwargs)
            return
        with transaction.atomic():
            super().save(*args, **kwargs)
            GalleryVersion.bump_people([self.person_id])

    def delete(self, *args, **kwargs) -> tuple[int, dict[str, int]]:
        with transaction.atomic():
            GalleryVersion.bump_people([self.person_id])
            return super().delete(*args, **kwargs)

    def vector(self) -> np.ndarray | None:
        return engine.encoding_from_bytes(self.encoding) if self.encoding else None

    def store_thumbnail(self, image: Image.Image) -> None:
        """The person page's picture, from the image the encoding job decoded."""
        if self.thumbnail:
            return
        name = storage.save(reference_path(self, "r.jpg"), renditions.thumbnail_jpeg(image, renditions.REFERENCE_SIDE))
        ReferencePhoto.objects.filter(pk=self.pk).update(thumbnail=name)
        self.thumbnail = name

    def store_faces(self, found: list[engine.DetectedFace], width: int, note: str = "") -> None:
        """Record what the encoding job found: one face is the encoding, several wait for a choice.

        width is the original's (boxes are in its pixels), to crop the faces from the thumbnail; note is
        what the user should know (engine.Analysis.note), kept as the reference's error."""
        if len(found) == 1:
            fields = {"status": ReferenceStatus.DONE, "encoding": engine.encoding_to_bytes(found[0].encoding)}
            fields["faces"] = []
        else:
            # Left to right, as the user sees them.
            found = sorted(found, key=lambda face: (face.box.left, face.box.top))
            fields = {
                "status": ReferenceStatus.CHOOSE,
                "encoding": None,
                "faces": [
                    {
                        "index": i,
                        "box": f.box.as_dict(),
                        "width": width,
                        "encoding": engine.encoding_to_bytes(f.encoding).hex(),
                    }
                    for i, f in enumerate(found)
                ],
            }
        fields["error"] = note
        ReferencePhoto.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)

    @classmethod
    def encoding_pending(cls, owner) -> bool:
        """A reference photo of this user is still being encoded: any match may still change."""
        return cls.objects.filter(person__owner=owner, status=ReferenceStatus.QUEUED).exists()

    def face_choices(self) -> list[dict]:
        """The faces to choose from: index and box (no encodings)."""
        return [{"index": face["index"], "box": face["box"]} for face in self.faces]

    def choose(self, index: int) -> None:
        """The user's pick among the faces: it becomes the encoding, the others are forgotten."""
        face = next((face for face in self.faces if face["index"] == index), None)
        if self.status != ReferenceStatus.CHOOSE or face is None:
            raise ValueError("no such face to choose")
        self.encoding = bytes.fromhex(face["encoding"])
        self.status, self.faces, self.error = ReferenceStatus.DONE, [], ""
        self.save(update_fields=["encoding", "status", "faces", "error", "updated_at"])


class Photo(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="photos")
    image = models.ImageField(upload_to=photo_path, max_length=200)
    original_name = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    thumbnail = models.ImageField(upload_to=thumbnail_path, max_length=200, blank=True)
    # The upright web-sized image the photo page shows, made by the job (renditions).
    web_image = models.ImageField(upload_to=web_path, max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=PhotoStatus.choices, default=PhotoStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    job_id = models.CharField(max_length=64, blank=True)
    # The queue of its latest job: uploads count towards the owner's fair share of the workers, bulk does not.
    queue = models.CharField(max_length=20, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When the photo was taken: EXIF DateTimeOriginal (with its offset), else the upload time.
    taken_at = models.DateTimeField(null=True, blank=True)
    taken_at_source = models.CharField(max_length=10, choices=TakenAtSource.choices, blank=True)
    # A gallery change is being matched against this photo's faces (jobs.rematch clears it).
    rematch_pending = models.BooleanField(default=False)

    objects = PhotoManager()

    class Meta:
        # Newest taken first; the id makes the order stable for pagination.
        ordering = [models.F("taken_at").desc(nulls_last=True), "-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "status"]), models.Index(fields=["owner", "-taken_at", "-id"])]
        constraints = [
            # One photo per file and owner. Rows from before the constraint may have no hash (""):
            # the migration kept the oldest of each duplicate set and cleared the hash of the others.
            models.UniqueConstraint(
                fields=["owner", "sha256"], condition=~models.Q(sha256=""), name="one_photo_per_owner_and_file"
            )
        ]

    def __str__(self) -> str:
        return self.original_name or f"photo {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("photo", args=[self.pk])

    def people_names(self) -> list[str]:
        return sorted({face.person.name for face in self.faces.all() if face.person_id})

    def is_matching(self, references_pending: bool) -> bool:
        """Done, but a gallery change (a reference being encoded, a re-match) has still to reach it."""
        return self.status == PhotoStatus.DONE and (self.rematch_pending or references_pending)

    def mark(self, status: str, error: str = "", **fields) -> None:
        """Set the status (and error) with a narrow UPDATE, so concurrent writers never clobber other fields."""
        fields.update(status=status, error=error, updated_at=timezone.now())
        Photo.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)

    def store_renditions(self, image: Image.Image) -> None:
        """The thumbnail and web-sized image, from the upright preview the job decoded; made once."""
        made = {}
        if not self.thumbnail:
            made["thumbnail"] = renditions.thumbnail_jpeg(image, settings.THUMBNAIL_SIZE), thumbnail_path
        if not self.web_image:
            made["web_image"] = renditions.web_jpeg(image), web_path
        names = {field: storage.save(path(self, "r.jpg"), data) for field, (data, path) in made.items()}
        if names:
            Photo.objects.filter(pk=self.pk).update(**names)
            for field, name in names.items():
                setattr(self, field, name)

    def store_face_crops(self, image: Image.Image, boxes: list[Box], original_width: int) -> list[str]:
        """A stored crop of each box (in the original's pixels), from an upright preview; their names in order."""
        return [
            storage.save(face_path(self, "f.jpg"), renditions.face_jpeg(image, box, original_width)) for box in boxes
        ]

    def store_missing_crops(self, image: Image.Image) -> int:
        """Crops for faces stored before crops were (the backfill job)."""
        faces = list(self.faces.filter(crop=""))
        names = self.store_face_crops(image, [face.box for face in faces], self.width or image.width)
        for face, name in zip(faces, names, strict=True):
            Face.objects.filter(pk=face.pk).update(crop=name)
        return len(faces)

    def has_renditions(self) -> bool:
        return bool(self.web_image) and not self.faces.filter(crop="").exists()

    def file_names(self) -> list[str]:
        """Every stored file of this photo: the original, its renditions and its face crops."""
        names = [self.image.name, self.thumbnail.name, self.web_image.name]
        names += self.faces.exclude(crop="").values_list("crop", flat=True)
        return [name for name in names if name]

    @transaction.atomic
    def replace_faces(self, analysis: engine.Analysis, crops: list[str] | None = None) -> list[Face]:
        """Store a fresh analysis, carrying each user decision over to the new box that overlaps it most.

        crops are the stored crop names of analysis.faces, in order; the old faces' crops go once committed."""
        # Two runs of one photo at once (a reprocess click during processing) take turns here, so the
        # second replaces the first's faces instead of both keeping theirs.
        Photo.objects.select_for_update().filter(pk=self.pk).first()
        old_faces = list(self.faces.prefetch_related("rejected_people", "excluded_groups"))
        crops = crops or [""] * len(analysis.faces)
        new_faces = [  # equivalent mutant: strict=False (the job makes one crop per face)
            Face(photo=self, encoding=engine.encoding_to_bytes(found.encoding), crop=crop, **found.box.as_dict())
            for found, crop in zip(analysis.faces, crops, strict=True)  # pragma: no mutate
        ]
        pairs = _pair_by_overlap(old_faces, new_faces)
        Face.objects.bulk_create(new_faces)
        for old, new in pairs:
            new.carry_decisions_from(old)
        # Alerts, references made from a face and a person's chosen picture point at it: move them to the
        # paired face before the old ones go ("not this person" finds the reference it has to drop
        # through source_face).
        for old, new in pairs:
            Alert.objects.filter(face=old).update(face=new)
            ReferencePhoto.objects.filter(source_face=old).update(source_face=new)
            Person.objects.filter(picture=old).update(picture=new)
        Face.objects.filter(pk__in=[f.pk for f in old_faces]).delete()
        storage.delete_on_commit([face.crop.name for face in old_faces if face.crop])
        Photo.objects.filter(pk=self.pk).update(width=analysis.width, height=analysis.height)
        self.width, self.height = analysis.width, analysis.height
        return new_faces

    def apply_matches(self, gallery: Gallery, earlier: bool = False) -> list[Alert]:
        """Match every face the user has not named; returns the alerts this created (one per person).

        earlier: the match is not news (a gallery change or bulk reprocessing found it)."""
        faces = [face for face in self.faces.prefetch_related("rejected_people") if not face.named_by_user]
        if not faces:
            return []
        vectors = np.stack([face.vector() for face in faces])
        excluded = [[person.pk for person in face.rejected_people.all()] for face in faces]
        # Equivalent mutant: strict=False (match() gives one answer per face).
        for face, found in zip(faces, gallery.match(vectors, excluded), strict=True):  # pragma: no mutate
            person_id, distance = (found.person_id, found.distance) if found else (None, None)
            if (face.person_id, face.distance) != (person_id, distance):
                face.person_id, face.distance = person_id, distance
                # update(), not save(): a face a concurrent reprocess removed is simply gone, not an error.
                Face.objects.filter(pk=face.pk).update(person_id=person_id, distance=distance)
        # An alert says who is in the photo: one for somebody no longer found in it would mislead.
        found = self.faces.filter(person__isnull=False).values("person_id")
        Alert.objects.filter(photo=self).exclude(person_id__in=found).delete()
        return self.record_alerts(earlier)

    def record_alerts(self, earlier: bool = False) -> list[Alert]:
        """One alert per person found in this photo; an alert that exists already is left alone.

        A face the user named is no news to them: it raises no alert; nor does a person whose alerts
        the user turned off."""
        created = []
        found = self.faces.filter(person__isnull=False, person__alerts_enabled=True, named_by_user=False)
        for face in found.select_related("person").order_by("distance"):
            alert, is_new = Alert.objects.get_or_create(
                photo=self,
                person_id=face.person_id,
                defaults={"owner_id": self.owner_id, "face": face, "distance": face.distance, "earlier": earlier},
            )
            if is_new:
                created.append(alert)
        return created


def _pair_by_overlap(old: list[Face], new: list[Face], minimum: float = 0.3) -> list[tuple[Face, Face]]:
    """Greedy pairs of old and new faces, best overlap first."""
    candidates = sorted(
        ((o.box.overlap(n.box), i, j) for i, o in enumerate(old) for j, n in enumerate(new)), reverse=True
    )
    used_old: set[int] = set()
    used_new: set[int] = set()
    pairs = []
    for score, i, j in candidates:
        if score < minimum:
            break  # pragma: no mutate (equivalent: continue, sorted best first all the rest are below too)
        if i in used_old or j in used_new:
            continue
        used_old.add(i)
        used_new.add(j)
        pairs.append((old[i], new[j]))
    return pairs


SURE_DISTANCE = 0.45


class Face(models.Model):
    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="faces")
    # Box in the original image's pixels, after EXIF orientation.
    top = models.PositiveIntegerField()
    right = models.PositiveIntegerField()
    bottom = models.PositiveIntegerField()
    left = models.PositiveIntegerField()
    encoding = models.BinaryField(editable=False)  # 128 float32, 512 bytes
    crop = models.ImageField(upload_to=face_path, max_length=200, blank=True)  # made by the job
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="faces")
    distance = models.FloatField(null=True, blank=True)
    # User decisions, which reprocessing and gallery changes never undo.
    named_by_user = models.BooleanField(default=False)
    rejected_people = models.ManyToManyField(Person, blank=True, related_name="rejected_faces")
    # Grouping of unknown faces (recognition.grouping): the group it is in, the groups the user took it
    # out of (it never rejoins them), and whether a grouping run has seen it (added to the FaceIndex).
    group = models.ForeignKey("FaceGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="faces")
    excluded_groups = models.ManyToManyField("FaceGroup", blank=True, related_name="excluded_faces")
    indexed = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["left", "top", "id"]
        # The faces no grouping run has seen: a few at any time, found without scanning the others.
        indexes = [models.Index(fields=["id"], condition=models.Q(indexed=False), name="face_not_indexed")]

    def __str__(self) -> str:
        return f"face {self.pk} in {self.photo_id}"

    @property
    def box(self) -> Box:
        return Box(top=self.top, right=self.right, bottom=self.bottom, left=self.left)

    @property
    def certainty(self) -> str:
        """A match in words: "sure" below SURE_DISTANCE (no stranger of the 100 measured came that close
        to anyone in a 903-person gallery; ../shared/faces README), "likely" up to the match distance."""
        return "sure" if self.distance is not None and self.distance < SURE_DISTANCE else "likely"

    def vector(self) -> np.ndarray:
        return engine.encoding_from_bytes(self.encoding)

    @property
    def area(self) -> int:
        return (self.right - self.left) * (self.bottom - self.top)

    def carry_decisions_from(self, old: Face) -> None:
        rejected = list(old.rejected_people.all())
        if rejected:
            self.rejected_people.set(rejected)
        excluded = list(old.excluded_groups.all())
        if excluded:
            self.excluded_groups.set(excluded)
        if old.named_by_user:
            self.person_id, self.distance, self.named_by_user = old.person_id, old.distance, True
            self.save(update_fields=["person", "distance", "named_by_user"])
        if old.group_id:  # still the same face: it stays in its group (the grouping run indexes it again)
            self.group_id = old.group_id
            self.save(update_fields=["group"])


class FaceGroupQuerySet(models.QuerySet):
    def with_size(self) -> FaceGroupQuerySet:
        """Each group's size: its faces that still match nobody."""
        return self.annotate(size=models.Count("faces", filter=models.Q(faces__person__isnull=True)))

    def shown(self, owner, hidden: bool = False) -> FaceGroupQuerySet:
        """The owner's groups as the "Who is this?" page lists them: big enough, largest first."""
        return (
            self.filter(owner=owner, hidden=hidden)
            .with_size()
            .filter(size__gte=settings.FACES_GROUP_MIN_FACES)
            .order_by("-size", "id")
        )


class FaceGroup(models.Model):
    """Unknown faces of one owner that look like one person, to be named ("Who is this?").

    Made and grown by recognition.grouping; the user names it (recognition.curation.name_group), takes
    faces out, merges two, or hides it. A hidden group still takes the faces that would join it, silently.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="face_groups")
    hidden = models.BooleanField(default=False)
    # A group the user shaped (merged into, or took faces out of): a full regrouping keeps it as it is.
    kept = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FaceGroupQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"group {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("group", args=[self.pk])

    def unknown_faces(self) -> models.QuerySet[Face]:
        """The faces that still match nobody: a face named or matched since leaves the group's count."""
        return self.faces.filter(person__isnull=True)

    def faces_largest_first(self) -> models.QuerySet[Face]:
        area = (models.F("right") - models.F("left")) * (models.F("bottom") - models.F("top"))
        return self.unknown_faces().order_by(area.desc(), "id")

    @transaction.atomic
    def remove_faces(self, face_ids: list[int]) -> int:
        """ "Not the same person": the faces leave the group and never rejoin it."""
        faces = list(self.unknown_faces().filter(pk__in=face_ids))
        if not face_ids or len(faces) != len(set(face_ids)):
            raise ValueError("every face must be one of this group's faces")
        Face.objects.filter(pk__in=[face.pk for face in faces]).update(group=None)
        through = Face.excluded_groups.through
        through.objects.bulk_create([through(face_id=face.pk, facegroup_id=self.pk) for face in faces],
                                    ignore_conflicts=True)  # fmt: skip
        self.kept = True  # shaped by the user: a full regrouping keeps it as it is
        self.save(update_fields=["kept", "updated_at"])
        return len(faces)

    @transaction.atomic
    def merge_into(self, target: FaceGroup) -> FaceGroup:
        """Two groups are one person: target gets every face (and every exclusion) of this one."""
        if target.owner_id != self.owner_id or target.pk == self.pk:
            raise ValueError("can only merge two different groups of the same owner")
        self.faces.update(group=target)
        through = Face.excluded_groups.through
        excluded = through.objects.filter(facegroup=self).values_list("face_id", flat=True)
        through.objects.bulk_create([through(face_id=face_id, facegroup_id=target.pk) for face_id in excluded],
                                    ignore_conflicts=True)  # fmt: skip
        target.kept = True
        target.save(update_fields=["kept", "updated_at"])
        self.delete()
        return target

    def hide(self) -> None:
        """Never suggested again; faces that would join it still do, so they are not suggested either."""
        self.hidden = True
        self.save(update_fields=["hidden", "updated_at"])


class FaceIndexChunk(models.Model):
    """Face encodings of one owner packed in blobs, for the grouping's nearest-neighbour search: an
    incremental run scans these few rows with numpy instead of reading every Face row.

    float16 (256 bytes a face; distances move by about 0.001, against thresholds 0.45-0.55) so that a
    scan reads half the bytes. Each run appends a small row; small rows are packed into rows of
    CHUNK_FACES once there are SMALL_CHUNKS of them. Faces deleted since are dropped when found;
    a full regrouping rebuilds it.
    """

    CHUNK_FACES = 8192
    SMALL_CHUNKS = 32

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # Before the blobs: SQLite reads a row's columns in order, through the blobs' overflow pages.
    count = models.PositiveIntegerField(default=0)
    face_ids = models.BinaryField()  # int64
    encodings = models.BinaryField()  # float16, 128 per face

    class Meta:
        ordering = ["owner", "id"]

    def __str__(self) -> str:
        return f"{self.count} faces of user {self.owner_id}"


class Alert(models.Model):
    """A known person was found in a photo: one alert per photo and person, however often it is processed.

    This is the domain event; the alerts app decides what is sent for it (alerts.dispatch)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="alerts")
    face = models.ForeignKey(Face, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="alerts")
    distance = models.FloatField(null=True, blank=True)
    seen = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Found because the gallery changed or by bulk reprocessing, not in a new photo: summarised, not sent.
    earlier = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["photo", "person"], name="one_alert_per_photo_person")]

    def __str__(self) -> str:
        return f"{self.person} in {self.photo}"

    def as_payload(self) -> dict:
        return {
            "id": self.pk,
            "person": {"id": self.person_id, "name": self.person.name},
            "photo": {
                "id": self.photo_id,
                "url": settings.SITE_URL.rstrip("/") + self.photo.get_absolute_url(),
                "taken_at": self.photo.taken_at.isoformat() if self.photo.taken_at else None,
            },
            "face": self.face_id,
            "distance": self.distance,
            "created_at": self.created_at.isoformat(),
        }
