"""Photos, the faces found in them, the known people of each user, and the alerts when one is found."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import PurePath

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, models, transaction
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
            )
        except IntegrityError:
            # Another request stored the same file a moment ago: answer with its photo (our file is deleted).
            existing = self.filter(owner=owner, sha256=sha256).first()
            if existing is None:
                raise
            return existing, True
        return photo, False


class Person(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="people")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("person", args=[self.pk])

    def add_reference(self, upload: UploadedFile | None) -> ReferencePhoto:
        """Store a reference photo (checked first); the caller queues its encoding."""
        admit_upload(self.owner, upload)
        return store_new_file(
            ReferencePhoto.objects, person=self, image=upload, original_name=clean_name(upload.name),
            size_bytes=upload.size,
        )  # fmt: skip


class ReferenceStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class ReferencePhoto(models.Model):
    """A photo that shows what a known person looks like; its largest face is their encoding."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="references")
    image = models.ImageField(upload_to=reference_path, max_length=200)
    # What a person's page shows, made by the encoding job (a face named on a photo: the crop itself).
    thumbnail = models.ImageField(upload_to=reference_path, max_length=200, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    encoding = models.BinaryField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=20, choices=ReferenceStatus.choices, default=ReferenceStatus.QUEUED)
    error = models.TextField(blank=True)
    # Set when the reference was made by naming a face on a photo page.
    source_face = models.ForeignKey(
        "Face", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.person} #{self.pk}"

    def vector(self) -> np.ndarray | None:
        return engine.encoding_from_bytes(self.encoding) if self.encoding else None

    def store_thumbnail(self, image: Image.Image) -> None:
        """The person page's picture, from the image the encoding job decoded."""
        if self.thumbnail:
            return
        name = storage.save(reference_path(self, "r.jpg"), renditions.thumbnail_jpeg(image, renditions.REFERENCE_SIDE))
        ReferencePhoto.objects.filter(pk=self.pk).update(thumbnail=name)
        self.thumbnail = name


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

    objects = PhotoManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "status"])]
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
        old_faces = list(self.faces.prefetch_related("rejected_people"))
        crops = crops or [""] * len(analysis.faces)
        new_faces = [
            Face(photo=self, encoding=engine.encoding_to_bytes(found.encoding), crop=crop, **found.box.as_dict())
            for found, crop in zip(analysis.faces, crops, strict=True)
        ]
        pairs = _pair_by_overlap(old_faces, new_faces)
        Face.objects.bulk_create(new_faces)
        for old, new in pairs:
            new.carry_decisions_from(old)
        # Alerts and references made from a face point at it: move them to the paired face before the
        # old ones go ("not this person" finds the reference it has to drop through source_face).
        for old, new in pairs:
            Alert.objects.filter(face=old).update(face=new)
            ReferencePhoto.objects.filter(source_face=old).update(source_face=new)
        Face.objects.filter(pk__in=[f.pk for f in old_faces]).delete()
        storage.delete_on_commit([face.crop.name for face in old_faces if face.crop])
        Photo.objects.filter(pk=self.pk).update(width=analysis.width, height=analysis.height)
        self.width, self.height = analysis.width, analysis.height
        return new_faces

    def apply_matches(self, gallery: Gallery) -> list[Alert]:
        """Match every face the user has not named; returns the alerts this created (one per person)."""
        faces = [face for face in self.faces.prefetch_related("rejected_people") if not face.named_by_user]
        if not faces:
            return []
        vectors = np.stack([face.vector() for face in faces])
        excluded = [[person.pk for person in face.rejected_people.all()] for face in faces]
        for face, found in zip(faces, gallery.match(vectors, excluded), strict=True):
            person_id, distance = (found.person_id, found.distance) if found else (None, None)
            if (face.person_id, face.distance) != (person_id, distance):
                face.person_id, face.distance = person_id, distance
                # update(), not save(): a face a concurrent reprocess removed is simply gone, not an error.
                Face.objects.filter(pk=face.pk).update(person_id=person_id, distance=distance)
        return self.record_alerts()

    def record_alerts(self) -> list[Alert]:
        """One alert per person found in this photo; an alert that exists already is left alone.

        A face the user named is no news to them: it raises no alert."""
        created = []
        for face in self.faces.filter(person__isnull=False, named_by_user=False).order_by("distance"):
            alert, is_new = Alert.objects.get_or_create(
                photo=self,
                person_id=face.person_id,
                defaults={"owner_id": self.owner_id, "face": face, "distance": face.distance},
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
            break
        if i in used_old or j in used_new:
            continue
        used_old.add(i)
        used_new.add(j)
        pairs.append((old[i], new[j]))
    return pairs


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

    class Meta:
        ordering = ["left", "top", "id"]

    def __str__(self) -> str:
        return f"face {self.pk} in {self.photo_id}"

    @property
    def box(self) -> Box:
        return Box(top=self.top, right=self.right, bottom=self.bottom, left=self.left)

    def vector(self) -> np.ndarray:
        return engine.encoding_from_bytes(self.encoding)

    def carry_decisions_from(self, old: Face) -> None:
        rejected = list(old.rejected_people.all())
        if rejected:
            self.rejected_people.set(rejected)
        if old.named_by_user:
            self.person_id, self.distance, self.named_by_user = old.person_id, old.distance, True
            self.save(update_fields=["person", "distance", "named_by_user"])


class UserSettings(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="photo_settings")
    email_on_match = models.BooleanField(default=True)
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name_plural = "user settings"

    def __str__(self) -> str:
        return f"settings of {self.user}"

    @classmethod
    def for_user(cls, user) -> UserSettings:
        found, _ = cls.objects.get_or_create(user=user, defaults={"webhook_secret": uuid.uuid4().hex})
        return found


class DeliveryStatus(models.TextChoices):
    NONE = "", "not sent"
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"


class Alert(models.Model):
    """A known person was found in a photo: one alert per photo and person, however often it is processed."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="alerts")
    face = models.ForeignKey(Face, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="alerts")
    distance = models.FloatField(null=True, blank=True)
    seen = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    webhook_status = models.CharField(max_length=20, choices=DeliveryStatus.choices, blank=True, default="")
    webhook_attempts = models.PositiveIntegerField(default=0)
    webhook_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["photo", "person"], name="one_alert_per_photo_person")]

    def __str__(self) -> str:
        return f"{self.person} in {self.photo}"

    def as_payload(self) -> dict:
        return {
            "id": self.pk,
            "person": {"id": self.person_id, "name": self.person.name},
            "photo": {"id": self.photo_id, "url": settings.SITE_URL.rstrip("/") + self.photo.get_absolute_url()},
            "face": self.face_id,
            "distance": self.distance,
            "created_at": self.created_at.isoformat(),
        }
