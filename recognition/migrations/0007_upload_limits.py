"""One photo per (owner, file hash), the size of reference photos for the storage quota, and the queue of
a photo's job for the fair share of the workers.

Databases from before may hold the same file twice for one owner (uploads that raced). The oldest photo
of each such set keeps its hash; the later ones keep everything else (faces, names, alerts) and only lose
their hash, so nothing is deleted and the constraint can be added.
"""

from django.db import migrations, models
from django.db.models import Count, Min


def clear_duplicate_hashes(apps, schema_editor):
    Photo = apps.get_model("recognition", "Photo")
    duplicated = (
        Photo.objects.exclude(sha256="")
        .values("owner_id", "sha256")
        .annotate(n=Count("id"), first=Min("id"))
        .filter(n__gt=1)
    )
    for group in duplicated.iterator():
        Photo.objects.filter(owner_id=group["owner_id"], sha256=group["sha256"]).exclude(pk=group["first"]).update(
            sha256=""
        )


def measure_references(apps, schema_editor):
    ReferencePhoto = apps.get_model("recognition", "ReferencePhoto")
    for reference in ReferencePhoto.objects.filter(size_bytes=0).exclude(image="").iterator():
        try:
            size = reference.image.storage.size(reference.image.name)
        except OSError:
            continue  # the file is missing: it takes no room
        ReferencePhoto.objects.filter(pk=reference.pk).update(size_bytes=size)


class Migration(migrations.Migration):
    dependencies = [("recognition", "0006_remove_alert_delivery_columns")]

    operations = [
        migrations.AddField(
            model_name="referencephoto",
            name="size_bytes",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="photo",
            name="queue",
            field=models.CharField(blank=True, default="", max_length=20),
        ),
        migrations.RunPython(clear_duplicate_hashes, migrations.RunPython.noop),
        migrations.RunPython(measure_references, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="photo",
            constraint=models.UniqueConstraint(
                condition=models.Q(("sha256", ""), _negated=True),
                fields=("owner", "sha256"),
                name="one_photo_per_owner_and_file",
            ),
        ),
    ]
